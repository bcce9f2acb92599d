// keymanager-agent is a agent KeyManager holding its keys in memory, as SPIRE's built-in memory key
// manager does (see internal/keys).
package main

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	keymanagerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/keymanager/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"spire-rs.test/spire-plugins/internal/common"
	"spire-rs.test/spire-plugins/internal/keys"
)

type plugin struct {
	keymanagerv1.UnimplementedKeyManagerServer
	configv1.UnimplementedConfigServer

	logger hclog.Logger
	keys   *keys.Store
}

func (p *plugin) SetLogger(logger hclog.Logger) { p.logger = logger }

func (p *plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	if err := common.Decode(req.HclConfiguration, &struct{}{}); err != nil {
		return nil, err
	}
	common.LogConfigured(p.logger, "keymanager-agent")
	return &configv1.ConfigureResponse{}, nil
}

func (p *plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	return common.ValidateResponse(common.Decode(req.HclConfiguration, &struct{}{})), nil
}

func publicKey(key *keys.Key) *keymanagerv1.PublicKey {
	return &keymanagerv1.PublicKey{
		Id:          key.ID,
		Type:        keymanagerv1.KeyType(key.Type),
		PkixData:    key.PKIX,
		Fingerprint: key.Fingerprint,
	}
}

func (p *plugin) GenerateKey(_ context.Context, req *keymanagerv1.GenerateKeyRequest) (*keymanagerv1.GenerateKeyResponse, error) {
	key, err := p.keys.Generate(req.KeyId, int32(req.KeyType))
	if err != nil {
		return nil, status.Errorf(status.Code(err), "failed to generate key: %s", status.Convert(err).Message())
	}
	return &keymanagerv1.GenerateKeyResponse{PublicKey: publicKey(key)}, nil
}

func (p *plugin) GetPublicKey(_ context.Context, req *keymanagerv1.GetPublicKeyRequest) (*keymanagerv1.GetPublicKeyResponse, error) {
	if req.KeyId == "" {
		return nil, status.Error(codes.InvalidArgument, "key id is required")
	}
	key, err := p.keys.Get(req.KeyId)
	if status.Code(err) == codes.NotFound {
		// SPIRE's key managers answer an unknown key with an empty response.
		return &keymanagerv1.GetPublicKeyResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	return &keymanagerv1.GetPublicKeyResponse{PublicKey: publicKey(key)}, nil
}

func (p *plugin) GetPublicKeys(context.Context, *keymanagerv1.GetPublicKeysRequest) (*keymanagerv1.GetPublicKeysResponse, error) {
	resp := new(keymanagerv1.GetPublicKeysResponse)
	for _, key := range p.keys.All() {
		resp.PublicKeys = append(resp.PublicKeys, publicKey(key))
	}
	return resp, nil
}

func (p *plugin) SignData(_ context.Context, req *keymanagerv1.SignDataRequest) (*keymanagerv1.SignDataResponse, error) {
	var signature []byte
	var fingerprint string
	var err error
	switch opts := req.SignerOpts.(type) {
	case *keymanagerv1.SignDataRequest_HashAlgorithm:
		signature, fingerprint, err = p.keys.Sign(req.KeyId, req.Data, int32(opts.HashAlgorithm), false, 0)
	case *keymanagerv1.SignDataRequest_PssOptions:
		pss := opts.PssOptions
		signature, fingerprint, err = p.keys.Sign(req.KeyId, req.Data, int32(pss.GetHashAlgorithm()), true, pss.GetSaltLength())
	default:
		return nil, status.Error(codes.InvalidArgument, "failed to sign data: signer opts is required")
	}
	if err != nil {
		return nil, err
	}
	return &keymanagerv1.SignDataResponse{Signature: signature, KeyFingerprint: fingerprint}, nil
}

func main() {
	p := &plugin{keys: keys.New()}
	pluginmain.Serve(keymanagerv1.KeyManagerPluginServer(p), configv1.ConfigServiceServer(p))
}
