// misbehave is a plugin that fails on purpose, to see how the daemon reports it. Its arguments (from
// `plugin_args`) choose what it pretends to be and how it fails:
//
//	-type NodeAttestor|KeyManager|WorkloadAttestor|UpstreamAuthority|Notifier  (default NodeAttestor)
//	-side server|agent                      (default server; WorkloadAttestor is agent-only,
//	                                         UpstreamAuthority and Notifier server-only)
//	-mode exit-at-start    exits 1 before serving, with a reason on stderr
//	      configure-error  Configure answers InvalidArgument
//	      hang-start       never serves (the host's start timeout must fire)
//	      hang-configure   Configure never returns
//	      die-later        serves, then exits 1 after -after seconds
//	      good             serves normally (every RPC but Configure answers Unimplemented)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	agentkeymanagerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/keymanager/v1"
	agentnodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/nodeattestor/v1"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	serverkeymanagerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/keymanager/v1"
	servernodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/nodeattestor/v1"
	notifierv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/notifier/v1"
	upstreamauthorityv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/upstreamauthority/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"spire-rs.test/spire-plugins/internal/common"
)

// ConfigureRefused is the message of the configure-error mode.
const ConfigureRefused = "misbehave: configure refused on purpose"

type config struct {
	configv1.UnimplementedConfigServer

	mode   string
	logger hclog.Logger
}

func (c *config) SetLogger(logger hclog.Logger) { c.logger = logger }

func (c *config) Configure(context.Context, *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	switch c.mode {
	case "configure-error":
		return nil, status.Error(codes.InvalidArgument, ConfigureRefused)
	case "hang-configure":
		hang()
	}
	common.LogConfigured(c.logger, "misbehave")
	return &configv1.ConfigureResponse{}, nil
}

func (c *config) Validate(context.Context, *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	if c.mode == "configure-error" {
		return &configv1.ValidateResponse{Valid: false, Notes: []string{ConfigureRefused}}, nil
	}
	return &configv1.ValidateResponse{Valid: true}, nil
}

// The plugin services, each answering Unimplemented to everything.
type (
	serverNodeAttestor struct {
		servernodeattestorv1.UnimplementedNodeAttestorServer
	}
	agentNodeAttestor struct {
		agentnodeattestorv1.UnimplementedNodeAttestorServer
	}
	serverKeyManager struct {
		serverkeymanagerv1.UnimplementedKeyManagerServer
	}
	agentKeyManager struct {
		agentkeymanagerv1.UnimplementedKeyManagerServer
	}
	workloadAttestor struct {
		workloadattestorv1.UnimplementedWorkloadAttestorServer
	}
	upstreamAuthority struct {
		upstreamauthorityv1.UnimplementedUpstreamAuthorityServer
	}
	notifier struct {
		notifierv1.UnimplementedNotifierServer
	}
)

// hang blocks forever (sleeping: a bare `select {}` with nothing else running is a deadlock the Go
// runtime reports and exits on).
func hang() {
	for {
		time.Sleep(time.Hour)
	}
}

func pluginServer(pluginType, side string) (pluginsdk.PluginServer, error) {
	switch pluginType + "/" + side {
	case "NodeAttestor/server":
		return servernodeattestorv1.NodeAttestorPluginServer(serverNodeAttestor{}), nil
	case "NodeAttestor/agent":
		return agentnodeattestorv1.NodeAttestorPluginServer(agentNodeAttestor{}), nil
	case "KeyManager/server":
		return serverkeymanagerv1.KeyManagerPluginServer(serverKeyManager{}), nil
	case "KeyManager/agent":
		return agentkeymanagerv1.KeyManagerPluginServer(agentKeyManager{}), nil
	case "WorkloadAttestor/agent":
		return workloadattestorv1.WorkloadAttestorPluginServer(workloadAttestor{}), nil
	case "UpstreamAuthority/server":
		return upstreamauthorityv1.UpstreamAuthorityPluginServer(upstreamAuthority{}), nil
	case "Notifier/server":
		return notifierv1.NotifierPluginServer(notifier{}), nil
	}
	return nil, fmt.Errorf("no %s plugin type %q", side, pluginType)
}

func main() {
	pluginType := flag.String("type", "NodeAttestor", "plugin type to pretend to be")
	side := flag.String("side", "server", "server or agent")
	mode := flag.String("mode", "good", "how to misbehave")
	after := flag.Int("after", 3, "seconds before die-later exits")
	flag.Parse()

	server, err := pluginServer(*pluginType, *side)
	if err != nil {
		fmt.Fprintln(os.Stderr, "misbehave:", err)
		os.Exit(2)
	}
	switch *mode {
	case "exit-at-start":
		fmt.Fprintln(os.Stderr, "misbehave: exiting at start on purpose")
		os.Exit(1)
	case "hang-start":
		hang()
	case "die-later":
		go func() {
			time.Sleep(time.Duration(*after) * time.Second)
			fmt.Fprintln(os.Stderr, "misbehave: dying on purpose")
			os.Exit(1)
		}()
	case "good", "configure-error", "hang-configure":
	default:
		fmt.Fprintf(os.Stderr, "misbehave: unknown mode %q\n", *mode)
		os.Exit(2)
	}
	pluginmain.Serve(server, configv1.ConfigServiceServer(&config{mode: *mode}))
}
