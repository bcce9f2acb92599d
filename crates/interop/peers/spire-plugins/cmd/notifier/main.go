// notifier is a server Notifier writing the X.509 roots of every bundle it is told about (loaded or
// updated) as PEM to the file `path` from its configuration.
package main

import (
	"context"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	notifierv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/notifier/v1"
	"github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/types"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"spire-rs.test/spire-plugins/internal/common"
)

type config struct {
	Path string `hcl:"path"`
}

type plugin struct {
	notifierv1.UnimplementedNotifierServer
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
	common.LogConfigured(p.logger, "notifier")
	return &configv1.ConfigureResponse{}, nil
}

func (p *plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	_, err := parse(req.HclConfiguration)
	return common.ValidateResponse(err), nil
}

func (p *plugin) write(bundle *types.Bundle) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.path == "" {
		return status.Error(codes.FailedPrecondition, "not configured")
	}
	if err := common.WriteBundleRoots(p.path, bundle); err != nil {
		return status.Errorf(codes.Internal, "unable to write bundle: %v", err)
	}
	return nil
}

func (p *plugin) Notify(_ context.Context, req *notifierv1.NotifyRequest) (*notifierv1.NotifyResponse, error) {
	if updated := req.GetBundleUpdated(); updated != nil {
		if err := p.write(updated.Bundle); err != nil {
			return nil, err
		}
	}
	return &notifierv1.NotifyResponse{}, nil
}

func (p *plugin) NotifyAndAdvise(_ context.Context, req *notifierv1.NotifyAndAdviseRequest) (*notifierv1.NotifyAndAdviseResponse, error) {
	if loaded := req.GetBundleLoaded(); loaded != nil {
		if err := p.write(loaded.Bundle); err != nil {
			return nil, err
		}
	}
	return &notifierv1.NotifyAndAdviseResponse{}, nil
}

func main() {
	p := new(plugin)
	pluginmain.Serve(notifierv1.NotifierPluginServer(p), configv1.ConfigServiceServer(p))
}
