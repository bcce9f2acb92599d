// challenge-agent is the agent half of a challenge–response node attestor: it sends its node name,
// then answers the server's nonce with HMAC-SHA256(secret, nonce).
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	nodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/nodeattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"spire-rs.test/spire-plugins/internal/common"
)

type config struct {
	NodeName string `hcl:"node_name"`
	Secret   string `hcl:"secret"`
}

type plugin struct {
	nodeattestorv1.UnimplementedNodeAttestorServer
	configv1.UnimplementedConfigServer

	logger hclog.Logger
	mu     sync.RWMutex
	config *config
}

func (p *plugin) SetLogger(logger hclog.Logger) { p.logger = logger }

func parse(req interface{ GetHclConfiguration() string }) (*config, error) {
	c := new(config)
	if err := common.Decode(req.GetHclConfiguration(), c); err != nil {
		return nil, err
	}
	if c.NodeName == "" || c.Secret == "" {
		return nil, status.Error(codes.InvalidArgument, "node_name and secret are required")
	}
	return c, nil
}

func (p *plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	c, err := parse(req)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.config = c
	p.mu.Unlock()
	common.LogConfigured(p.logger, "challenge-agent")
	return &configv1.ConfigureResponse{}, nil
}

func (p *plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	_, err := parse(req)
	return common.ValidateResponse(err), nil
}

func (p *plugin) AidAttestation(stream nodeattestorv1.NodeAttestor_AidAttestationServer) error {
	p.mu.RLock()
	c := p.config
	p.mu.RUnlock()
	if c == nil {
		return status.Error(codes.FailedPrecondition, "not configured")
	}
	payload, err := json.Marshal(map[string]string{"node_name": c.NodeName})
	if err != nil {
		return err
	}
	if err := stream.Send(&nodeattestorv1.PayloadOrChallengeResponse{
		Data: &nodeattestorv1.PayloadOrChallengeResponse_Payload{Payload: payload},
	}); err != nil {
		return err
	}
	challenge, err := stream.Recv()
	if err != nil {
		return err
	}
	if len(challenge.Challenge) == 0 {
		return errors.New("empty challenge")
	}
	mac := hmac.New(sha256.New, []byte(c.Secret))
	mac.Write(challenge.Challenge)
	return stream.Send(&nodeattestorv1.PayloadOrChallengeResponse{
		Data: &nodeattestorv1.PayloadOrChallengeResponse_ChallengeResponse{ChallengeResponse: mac.Sum(nil)},
	})
}

func main() {
	p := new(plugin)
	pluginmain.Serve(nodeattestorv1.NodeAttestorPluginServer(p), configv1.ConfigServiceServer(p))
}
