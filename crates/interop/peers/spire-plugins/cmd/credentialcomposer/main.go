// credentialcomposer is a server CredentialComposer adding `OU=composed` to the subject of workload
// X509-SVIDs and the claim `"composed": true` to workload JWT-SVIDs. The other credentials pass
// through: it returns the attributes it was given unchanged (SPIRE also reads an Unimplemented error
// or a response without attributes as "unchanged", but echoing them is what works everywhere).
package main

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	credentialcomposerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/credentialcomposer/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"spire-rs.test/spire-plugins/internal/common"
)

type plugin struct {
	credentialcomposerv1.UnimplementedCredentialComposerServer
	configv1.UnimplementedConfigServer

	logger hclog.Logger
}

func (p *plugin) SetLogger(logger hclog.Logger) { p.logger = logger }

func (p *plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	if err := common.Decode(req.HclConfiguration, &struct{}{}); err != nil {
		return nil, err
	}
	common.LogConfigured(p.logger, "credentialcomposer")
	return &configv1.ConfigureResponse{}, nil
}

func (p *plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	return common.ValidateResponse(common.Decode(req.HclConfiguration, &struct{}{})), nil
}

func (p *plugin) ComposeServerX509CA(_ context.Context, req *credentialcomposerv1.ComposeServerX509CARequest) (*credentialcomposerv1.ComposeServerX509CAResponse, error) {
	return &credentialcomposerv1.ComposeServerX509CAResponse{Attributes: req.Attributes}, nil
}

func (p *plugin) ComposeServerX509SVID(_ context.Context, req *credentialcomposerv1.ComposeServerX509SVIDRequest) (*credentialcomposerv1.ComposeServerX509SVIDResponse, error) {
	return &credentialcomposerv1.ComposeServerX509SVIDResponse{Attributes: req.Attributes}, nil
}

func (p *plugin) ComposeAgentX509SVID(_ context.Context, req *credentialcomposerv1.ComposeAgentX509SVIDRequest) (*credentialcomposerv1.ComposeAgentX509SVIDResponse, error) {
	return &credentialcomposerv1.ComposeAgentX509SVIDResponse{Attributes: req.Attributes}, nil
}

func (p *plugin) ComposeWorkloadX509SVID(_ context.Context, req *credentialcomposerv1.ComposeWorkloadX509SVIDRequest) (*credentialcomposerv1.ComposeWorkloadX509SVIDResponse, error) {
	attributes := req.Attributes
	if attributes == nil {
		attributes = new(credentialcomposerv1.X509SVIDAttributes)
	}
	if attributes.Subject == nil {
		attributes.Subject = new(credentialcomposerv1.DistinguishedName)
	}
	attributes.Subject.OrganizationalUnit = append(attributes.Subject.OrganizationalUnit, "composed")
	return &credentialcomposerv1.ComposeWorkloadX509SVIDResponse{Attributes: attributes}, nil
}

func (p *plugin) ComposeWorkloadJWTSVID(_ context.Context, req *credentialcomposerv1.ComposeWorkloadJWTSVIDRequest) (*credentialcomposerv1.ComposeWorkloadJWTSVIDResponse, error) {
	attributes := req.Attributes
	if attributes == nil {
		attributes = new(credentialcomposerv1.JWTSVIDAttributes)
	}
	if attributes.Claims == nil {
		attributes.Claims = new(structpb.Struct)
	}
	if attributes.Claims.Fields == nil {
		attributes.Claims.Fields = map[string]*structpb.Value{}
	}
	if _, taken := attributes.Claims.Fields["composed"]; taken {
		return nil, status.Error(codes.InvalidArgument, "claim \"composed\" is already set")
	}
	attributes.Claims.Fields["composed"] = structpb.NewBoolValue(true)
	return &credentialcomposerv1.ComposeWorkloadJWTSVIDResponse{Attributes: attributes}, nil
}

func main() {
	p := new(plugin)
	pluginmain.Serve(credentialcomposerv1.CredentialComposerPluginServer(p), configv1.ConfigServiceServer(p))
}
