// upstream is an UpstreamAuthority signing the server's CA CSR with a root read from PEM files, as
// SPIRE's `disk` upstream authority does, so that two servers given the same files chain to the same
// root. It keeps the MintX509CAAndSubscribe stream open until SPIRE ends it, and leaves JWT key
// publishing and local bundle streaming unimplemented (SPIRE falls back to its own).
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/url"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	upstreamauthorityv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/upstreamauthority/v1"
	"github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/types"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"spire-rs.test/spire-plugins/internal/common"
)

// The defaults of SPIRE's x509svid.UpstreamCA.
const (
	defaultTTL = time.Hour
	backdate   = 10 * time.Second
)

type config struct {
	CertFilePath string `hcl:"cert_file_path"`
	KeyFilePath  string `hcl:"key_file_path"`
}

type authority struct {
	trustDomain string
	root        *x509.Certificate
	key         crypto.Signer
}

type plugin struct {
	upstreamauthorityv1.UnimplementedUpstreamAuthorityServer
	configv1.UnimplementedConfigServer

	logger hclog.Logger
	mu     sync.RWMutex
	ca     *authority
}

func (p *plugin) SetLogger(logger hclog.Logger) { p.logger = logger }

func load(hclText string, core *configv1.CoreConfiguration) (*authority, error) {
	c := new(config)
	if err := common.Decode(hclText, c); err != nil {
		return nil, err
	}
	td, err := common.TrustDomain(core)
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(c.CertFilePath, c.KeyFilePath)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "unable to load upstream CA: %v", err)
	}
	root, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "unable to parse upstream CA: %v", err)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, status.Error(codes.InvalidArgument, "upstream CA key cannot sign")
	}
	return &authority{trustDomain: td, root: root, key: key}, nil
}

func (p *plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	ca, err := load(req.HclConfiguration, req.CoreConfiguration)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.ca = ca
	p.mu.Unlock()
	common.LogConfigured(p.logger, "upstream")
	return &configv1.ConfigureResponse{}, nil
}

func (p *plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	_, err := load(req.HclConfiguration, req.CoreConfiguration)
	return common.ValidateResponse(err), nil
}

func (p *plugin) MintX509CAAndSubscribe(req *upstreamauthorityv1.MintX509CARequest, stream upstreamauthorityv1.UpstreamAuthority_MintX509CAAndSubscribeServer) error {
	p.mu.RLock()
	ca := p.ca
	p.mu.RUnlock()
	if ca == nil {
		return status.Error(codes.FailedPrecondition, "not configured")
	}
	cert, err := ca.sign(req.Csr, time.Duration(req.PreferredTtl)*time.Second)
	if err != nil {
		return status.Errorf(codes.Internal, "unable to sign CSR: %v", err)
	}
	if err := stream.Send(&upstreamauthorityv1.MintX509CAResponse{
		X509CaChain:       []*types.X509Certificate{{Asn1: cert}},
		UpstreamX509Roots: []*types.X509Certificate{{Asn1: ca.root.Raw}},
	}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (p *plugin) PublishJWTKeyAndSubscribe(*upstreamauthorityv1.PublishJWTKeyRequest, upstreamauthorityv1.UpstreamAuthority_PublishJWTKeyAndSubscribeServer) error {
	return status.Error(codes.Unimplemented, "upstream: publishing JWT keys is not implemented")
}

func (p *plugin) SubscribeToLocalBundle(*upstreamauthorityv1.SubscribeToLocalBundleRequest, upstreamauthorityv1.UpstreamAuthority_SubscribeToLocalBundleServer) error {
	return status.Error(codes.Unimplemented, "upstream: local bundle updates are not implemented")
}

// sign makes an intermediate CA certificate for the CSR, which must name exactly the trust domain
// (spiffe://<td>) as its URI SAN; the TTL is the requested one (default one hour), capped by the
// root's expiry; the subject, URI and extensions come from the CSR.
func (ca *authority) sign(csrDER []byte, ttl time.Duration) ([]byte, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("unable to parse CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR signature check failed: %w", err)
	}
	want := (&url.URL{Scheme: "spiffe", Host: ca.trustDomain}).String()
	if len(csr.URIs) != 1 || csr.URIs[0].String() != want {
		return nil, fmt.Errorf("CSR must have exactly one URI SAN %q", want)
	}
	if ttl <= 0 {
		ttl = defaultTTL
	}
	now := time.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(ca.root.NotAfter) {
		notAfter = ca.root.NotAfter
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	pkix, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return nil, err
	}
	keyID := sha1.Sum(pkix)
	template := &x509.Certificate{
		SerialNumber:          serial,
		RawSubject:            csr.RawSubject,
		URIs:                  csr.URIs,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		SubjectKeyId:          keyID[:],
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		ExtraExtensions:       csr.Extensions,
	}
	return x509.CreateCertificate(rand.Reader, template, ca.root, csr.PublicKey, ca.key)
}

func main() {
	p := new(plugin)
	pluginmain.Serve(upstreamauthorityv1.UpstreamAuthorityPluginServer(p), configv1.ConfigServiceServer(p))
}
