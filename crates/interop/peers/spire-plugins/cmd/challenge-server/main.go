// challenge-server is the server half of a challenge–response node attestor. It sends a random
// nonce, checks the agent's HMAC-SHA256(secret, nonce), and calls back into SPIRE's host services:
// AgentStore (has this agent attested before?), IdentityProvider (the server's own SPIFFE ID) and
// Metrics (a counter per attestation), so that the end-to-end test exercises the broker.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	metricsv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/hostservice/common/metrics/v1"
	agentstorev1 "github.com/spiffe/spire-plugin-sdk/proto/spire/hostservice/server/agentstore/v1"
	identityproviderv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/hostservice/server/identityprovider/v1"
	nodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/nodeattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"spire-rs.test/spire-plugins/internal/common"
)

type config struct {
	Secret string `hcl:"secret"`

	trustDomain string
}

type plugin struct {
	nodeattestorv1.UnimplementedNodeAttestorServer
	configv1.UnimplementedConfigServer

	logger   hclog.Logger
	store    agentstorev1.AgentStoreServiceClient
	identity identityproviderv1.IdentityProviderServiceClient
	metrics  metricsv1.MetricsServiceClient

	mu     sync.RWMutex
	config *config
}

func (p *plugin) SetLogger(logger hclog.Logger) { p.logger = logger }

// BrokerHostServices fails the load when SPIRE does not offer a host service this plugin needs.
func (p *plugin) BrokerHostServices(broker pluginsdk.ServiceBroker) error {
	if !broker.BrokerClient(&p.store) {
		return errors.New("AgentStore host service is required")
	}
	if !broker.BrokerClient(&p.identity) {
		return errors.New("IdentityProvider host service is required")
	}
	if !broker.BrokerClient(&p.metrics) {
		return errors.New("Metrics host service is required")
	}
	return nil
}

func parse(hclText string, core *configv1.CoreConfiguration) (*config, error) {
	c := new(config)
	if err := common.Decode(hclText, c); err != nil {
		return nil, err
	}
	if c.Secret == "" {
		return nil, status.Error(codes.InvalidArgument, "secret is required")
	}
	td, err := common.TrustDomain(core)
	if err != nil {
		return nil, err
	}
	c.trustDomain = td
	return c, nil
}

func (p *plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	c, err := parse(req.HclConfiguration, req.CoreConfiguration)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.config = c
	p.mu.Unlock()
	common.LogConfigured(p.logger, "challenge-server")
	return &configv1.ConfigureResponse{}, nil
}

func (p *plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	_, err := parse(req.HclConfiguration, req.CoreConfiguration)
	return common.ValidateResponse(err), nil
}

func (p *plugin) Attest(stream nodeattestorv1.NodeAttestor_AttestServer) error {
	p.mu.RLock()
	c := p.config
	p.mu.RUnlock()
	if c == nil {
		return status.Error(codes.FailedPrecondition, "not configured")
	}
	ctx := stream.Context()

	req, err := stream.Recv()
	if err != nil {
		return err
	}
	var payload struct {
		NodeName string `json:"node_name"`
	}
	if err := json.Unmarshal(req.GetPayload(), &payload); err != nil || payload.NodeName == "" {
		return status.Error(codes.InvalidArgument, "payload must be JSON with a node_name")
	}

	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	if err := stream.Send(&nodeattestorv1.AttestResponse{
		Response: &nodeattestorv1.AttestResponse_Challenge{Challenge: nonce},
	}); err != nil {
		return err
	}
	answer, err := stream.Recv()
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(c.Secret))
	mac.Write(nonce)
	if !hmac.Equal(mac.Sum(nil), answer.GetChallengeResponse()) {
		return status.Error(codes.PermissionDenied, "challenge response does not match")
	}

	agentID := fmt.Sprintf("spiffe://%s/spire/agent/challenge/%s", c.trustDomain, payload.NodeName)
	seen, err := p.seenBefore(ctx, agentID)
	if err != nil {
		return err
	}
	serverID, err := p.serverID(ctx)
	if err != nil {
		return err
	}
	if _, err := p.metrics.IncrCounter(ctx, &metricsv1.IncrCounterRequest{
		Key: []string{"challenge_attestations"}, Val: 1,
	}); err != nil {
		return status.Errorf(codes.Internal, "metrics host service: %v", err)
	}

	return stream.Send(&nodeattestorv1.AttestResponse{
		Response: &nodeattestorv1.AttestResponse_AgentAttributes{AgentAttributes: &nodeattestorv1.AgentAttributes{
			SpiffeId: agentID,
			SelectorValues: []string{
				"node_name:" + payload.NodeName,
				fmt.Sprintf("seen_before:%t", seen),
				"server_id:" + serverID,
			},
			CanReattest: false,
		}},
	})
}

// seenBefore asks the AgentStore whether the agent has an attested node record; NotFound is false.
func (p *plugin) seenBefore(ctx context.Context, agentID string) (bool, error) {
	_, err := p.store.GetAgentInfo(ctx, &agentstorev1.GetAgentInfoRequest{AgentId: agentID})
	switch status.Code(err) {
	case codes.OK:
		return true, nil
	case codes.NotFound:
		return false, nil
	default:
		return false, status.Errorf(codes.Internal, "agent store host service: %v", err)
	}
}

// serverID is the URI SAN of the leaf of the server's own X509-SVID, from the IdentityProvider.
func (p *plugin) serverID(ctx context.Context) (string, error) {
	resp, err := p.identity.FetchX509Identity(ctx, &identityproviderv1.FetchX509IdentityRequest{})
	if err != nil {
		return "", status.Errorf(codes.Internal, "identity provider host service: %v", err)
	}
	chain := resp.GetIdentity().GetCertChain()
	if len(chain) == 0 {
		return "", status.Error(codes.Internal, "identity provider returned no certificate")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return "", status.Errorf(codes.Internal, "identity provider returned a bad certificate: %v", err)
	}
	if len(leaf.URIs) != 1 {
		return "", status.Error(codes.Internal, "server X509-SVID has no single URI SAN")
	}
	return leaf.URIs[0].String(), nil
}

func main() {
	p := new(plugin)
	pluginmain.Serve(nodeattestorv1.NodeAttestorPluginServer(p), configv1.ConfigServiceServer(p))
}
