// bundlepublisher is a server BundlePublisher writing the X.509 roots of each bundle it is asked to
// publish as PEM to the file `path` from its configuration.
package main

import (
	"context"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	bundlepublisherv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/bundlepublisher/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"spire-rs.test/spire-plugins/internal/common"
)

type config struct {
	Path string `hcl:"path"`
}

type plugin struct {
	bundlepublisherv1.UnimplementedBundlePublisherServer
	configv1.UnimplementedConfigServer

	logger hclog.Logger
	mu     sync.Mutex
	path   string
}

func (p *plugin) SetLogger(logger hclog.Logger) { p.logger = logger }

func parse(hclText string) (*config, error) {
	c := new(config)
	if err := common.Decode(hclText, c); err != nil {
		return nil, err
	}
	if c.Path == "" {
		return nil, status.Error(codes.InvalidArgument, "path is required")
	}
	return c, nil
}

func (p *plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	c, err := parse(req.HclConfiguration)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.path = c.Path
	p.mu.Unlock()
	common.LogConfigured(p.logger, "bundlepublisher")
	return &configv1.ConfigureResponse{}, nil
}

func (p *plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	_, err := parse(req.HclConfiguration)
	return common.ValidateResponse(err), nil
}

func (p *plugin) PublishBundle(_ context.Context, req *bundlepublisherv1.PublishBundleRequest) (*bundlepublisherv1.PublishBundleResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.path == "" {
		return nil, status.Error(codes.FailedPrecondition, "not configured")
	}
	if err := common.WriteBundleRoots(p.path, req.Bundle); err != nil {
		return nil, status.Errorf(codes.Internal, "unable to write bundle: %v", err)
	}
	return &bundlepublisherv1.PublishBundleResponse{}, nil
}

func main() {
	p := new(plugin)
	pluginmain.Serve(bundlepublisherv1.BundlePublisherPluginServer(p), configv1.ConfigServiceServer(p))
}
