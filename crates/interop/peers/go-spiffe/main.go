// go-spiffe-workload: a small workload built on go-spiffe v2 that the interoperability tests run
// against spire-rs's agent. Each subcommand prints one JSON object on stdout and exits non-zero
// (with the error on stderr) when anything fails.
//
//	go-spiffe-workload x509 [-socket P]
//	go-spiffe-workload jwt  [-socket P] -audience A
//	go-spiffe-workload mtls [-socket P] -server-id ID1 -client-id ID2
//	go-spiffe-workload mtls-serve [-socket P] -listen ADDR -id OWN -peer-id PEER
//	go-spiffe-workload mtls-dial  [-socket P] -addr ADDR -id OWN -peer-id PEER
//
// mtls-serve and mtls-dial are one side each of an mTLS exchange with another workload (of another
// trust domain, say): they present the SVID for -id and accept only a peer presenting -peer-id,
// chained to the bundle of the peer's trust domain that the Workload API handed this workload.
//
// -socket takes a path or a unix:// URI; without it go-spiffe reads SPIFFE_ENDPOINT_SOCKET.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: go-spiffe-workload x509|jwt|mtls|mtls-serve|mtls-dial [flags]"))
	}
	cmd, args := os.Args[1], os.Args[2:]
	flags := flag.NewFlagSet(cmd, flag.ExitOnError)
	socket := flags.String("socket", "", "Workload API socket (path or unix:// URI); default SPIFFE_ENDPOINT_SOCKET")
	audience := flags.String("audience", "", "jwt: audience")
	serverID := flags.String("server-id", "", "mtls: SPIFFE ID the server side presents")
	clientID := flags.String("client-id", "", "mtls: SPIFFE ID the client side presents")
	ownID := flags.String("id", "", "mtls-serve, mtls-dial: SPIFFE ID this side presents")
	peerID := flags.String("peer-id", "", "mtls-serve, mtls-dial: the only SPIFFE ID accepted from the peer")
	listen := flags.String("listen", "127.0.0.1:0", "mtls-serve: TCP address to accept one connection on")
	addr := flags.String("addr", "", "mtls-dial: TCP address of the peer")
	timeout := flags.Duration("timeout", 30*time.Second, "overall deadline")
	_ = flags.Parse(args)

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var opts []workloadapi.ClientOption
	if addr := socketAddr(*socket); addr != "" {
		opts = append(opts, workloadapi.WithAddr(addr))
	}

	var out any
	var err error
	switch cmd {
	case "x509":
		out, err = runX509(ctx, opts)
	case "jwt":
		out, err = runJWT(ctx, opts, *audience)
	case "mtls":
		out, err = runMTLS(ctx, opts, *serverID, *clientID)
	case "mtls-serve":
		out, err = runServe(ctx, opts, *listen, *ownID, *peerID)
	case "mtls-dial":
		out, err = runDial(ctx, opts, *addr, *ownID, *peerID)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fail(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go-spiffe-workload:", err)
	os.Exit(1)
}

// socketAddr turns a bare path into the unix:// URI go-spiffe expects.
func socketAddr(s string) string {
	if s == "" || strings.Contains(s, "://") {
		return s
	}
	return "unix://" + s
}

func runX509(ctx context.Context, opts []workloadapi.ClientOption) (any, error) {
	source, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(opts...))
	if err != nil {
		return nil, fmt.Errorf("X509 source: %w", err)
	}
	defer source.Close()
	svid, err := source.GetX509SVID()
	if err != nil {
		return nil, err
	}
	// Check the chain against the bundle the same source received, as a TLS peer would.
	id, _, err := x509svid.Verify(svid.Certificates, source)
	if err != nil {
		return nil, fmt.Errorf("the SVID does not verify against its own bundle: %w", err)
	}
	all, err := workloadapi.FetchX509SVIDs(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("FetchX509SVIDs: %w", err)
	}
	ids := make([]string, 0, len(all))
	for _, s := range all {
		ids = append(ids, s.ID.String())
	}
	return map[string]any{
		"spiffe_id":   svid.ID.String(),
		"verified_id": id.String(),
		"expires_at":  svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339),
		"chain_len":   len(svid.Certificates),
		"hint":        svid.Hint,
		"all_ids":     ids,
	}, nil
}

func runJWT(ctx context.Context, opts []workloadapi.ClientOption, audience string) (any, error) {
	if audience == "" {
		return nil, errors.New("jwt needs -audience")
	}
	svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience}, opts...)
	if err != nil {
		return nil, fmt.Errorf("FetchJWTSVID: %w", err)
	}
	bundles, err := workloadapi.FetchJWTBundles(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("FetchJWTBundles: %w", err)
	}
	// Validated locally, with go-spiffe's own JOSE code, not by asking the agent.
	validated, err := jwtsvid.ParseAndValidate(svid.Marshal(), bundles, []string{audience})
	if err != nil {
		return nil, fmt.Errorf("ParseAndValidate: %w", err)
	}
	return map[string]any{
		"spiffe_id":     svid.ID.String(),
		"validated_id":  validated.ID.String(),
		"audience":      validated.Audience,
		"expires_at":    validated.Expiry.UTC().Format(time.RFC3339),
		"hint":          svid.Hint,
		"trust_domains": len(bundles.Bundles()),
	}, nil
}

// sourceFor opens an X509 source whose default SVID is the one with `id` (the agent may hand this
// workload several).
func sourceFor(ctx context.Context, opts []workloadapi.ClientOption, id spiffeid.ID) (*workloadapi.X509Source, error) {
	source, err := workloadapi.NewX509Source(ctx,
		workloadapi.WithClientOptions(opts...),
		workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
			for _, s := range svids {
				if s.ID == id {
					return s
				}
			}
			return nil
		}))
	if err != nil {
		return nil, err
	}
	if svid, err := source.GetX509SVID(); err != nil || svid == nil || svid.ID != id {
		source.Close()
		return nil, fmt.Errorf("the Workload API gave no SVID for %s (%v)", id, err)
	}
	return source, nil
}

func runMTLS(ctx context.Context, opts []workloadapi.ClientOption, serverIDText, clientIDText string) (any, error) {
	serverID, err := spiffeid.FromString(serverIDText)
	if err != nil {
		return nil, fmt.Errorf("-server-id: %w", err)
	}
	clientID, err := spiffeid.FromString(clientIDText)
	if err != nil {
		return nil, fmt.Errorf("-client-id: %w", err)
	}
	serverSource, err := sourceFor(ctx, opts, serverID)
	if err != nil {
		return nil, err
	}
	defer serverSource.Close()
	clientSource, err := sourceFor(ctx, opts, clientID)
	if err != nil {
		return nil, err
	}
	defer clientSource.Close()

	listener, err := tls.Listen("tcp", "127.0.0.1:0",
		tlsconfig.MTLSServerConfig(serverSource, serverSource, tlsconfig.AuthorizeID(clientID)))
	if err != nil {
		return nil, err
	}
	defer listener.Close()

	type seen struct {
		peer spiffeid.ID
		err  error
	}
	serverSaw := make(chan seen, 1)
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			serverSaw <- seen{err: err}
			return
		}
		defer conn.Close()
		peer, _, err := echo(ctx, conn.(*tls.Conn))
		serverSaw <- seen{peer: peer, err: err}
	}()

	conn, err := tls.Dial("tcp", listener.Addr().String(),
		tlsconfig.MTLSClientConfig(clientSource, clientSource, tlsconfig.AuthorizeID(serverID)))
	if err != nil {
		return nil, fmt.Errorf("client handshake: %w", err)
	}
	defer conn.Close()
	clientSawID, reply, err := ping(conn)
	if err != nil {
		return nil, err
	}
	server := <-serverSaw
	if server.err != nil {
		return nil, server.err
	}
	return map[string]any{
		"server_saw": server.peer.String(),
		"client_saw": clientSawID.String(),
		"reply":      reply,
		"tls":        tls.VersionName(conn.ConnectionState().Version),
	}, nil
}

// echo is the server's half of an exchange: it completes the handshake on conn and answers the
// client's first message with "echo:" and that message, so that the client knows application data
// flows both ways. Returns the client's SPIFFE ID and its message.
func echo(ctx context.Context, conn *tls.Conn) (spiffeid.ID, string, error) {
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if err := conn.HandshakeContext(ctx); err != nil {
		return spiffeid.ID{}, "", fmt.Errorf("server handshake: %w", err)
	}
	peer, err := x509svid.IDFromCert(conn.ConnectionState().PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, "", err
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		return spiffeid.ID{}, "", fmt.Errorf("server read: %w", err)
	}
	if _, err := conn.Write(append([]byte("echo:"), buf[:n]...)); err != nil {
		return spiffeid.ID{}, "", fmt.Errorf("server write: %w", err)
	}
	return peer, string(buf[:n]), nil
}

// ping is the client's half of an exchange on a connection whose handshake is done: it sends
// "ping" and reads the echo. Returns the server's SPIFFE ID and its reply.
func ping(conn *tls.Conn) (spiffeid.ID, string, error) {
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	peer, err := x509svid.IDFromCert(conn.ConnectionState().PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, "", err
	}
	if _, err := conn.Write([]byte("ping")); err != nil {
		return spiffeid.ID{}, "", fmt.Errorf("client write: %w", err)
	}
	reply, err := io.ReadAll(io.LimitReader(conn, 9))
	if err != nil {
		return spiffeid.ID{}, "", fmt.Errorf("client read: %w", err)
	}
	return peer, string(reply), nil
}

// peerSide opens the X509 source of one side of an exchange between two workloads: its default SVID
// is the one for ownText, and peerText is the only SPIFFE ID it will accept from the other side.
func peerSide(ctx context.Context, opts []workloadapi.ClientOption, ownText, peerText string) (*workloadapi.X509Source, tlsconfig.Authorizer, error) {
	own, err := spiffeid.FromString(ownText)
	if err != nil {
		return nil, nil, fmt.Errorf("-id: %w", err)
	}
	peer, err := spiffeid.FromString(peerText)
	if err != nil {
		return nil, nil, fmt.Errorf("-peer-id: %w", err)
	}
	source, err := sourceFor(ctx, opts, own)
	if err != nil {
		return nil, nil, err
	}
	return source, tlsconfig.AuthorizeID(peer), nil
}

// runServe accepts one mTLS connection on listen, answers its first message with "echo:" and that
// message, and reports the peer's SPIFFE ID; a peer other than peerID fails the handshake.
func runServe(ctx context.Context, opts []workloadapi.ClientOption, listen, ownText, peerText string) (any, error) {
	source, authorize, err := peerSide(ctx, opts, ownText, peerText)
	if err != nil {
		return nil, err
	}
	defer source.Close()
	listener, err := tls.Listen("tcp", listen, tlsconfig.MTLSServerConfig(source, source, authorize))
	if err != nil {
		return nil, err
	}
	defer listener.Close()
	// No peer before the overall deadline: Accept fails instead of waiting forever.
	go func() {
		<-ctx.Done()
		listener.Close()
	}()
	conn, err := listener.Accept()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	saw, received, err := echo(ctx, conn.(*tls.Conn))
	if err != nil {
		return nil, err
	}
	return map[string]any{"peer_saw": saw.String(), "received": received}, nil
}

// runDial connects to addr over mTLS, sends "ping" and reports the peer's SPIFFE ID and its answer;
// a peer other than peerID fails the handshake.
func runDial(ctx context.Context, opts []workloadapi.ClientOption, addr, ownText, peerText string) (any, error) {
	source, authorize, err := peerSide(ctx, opts, ownText, peerText)
	if err != nil {
		return nil, err
	}
	defer source.Close()
	dialer := tls.Dialer{Config: tlsconfig.MTLSClientConfig(source, source, authorize)}
	raw, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client handshake: %w", err)
	}
	conn := raw.(*tls.Conn)
	defer conn.Close()
	saw, reply, err := ping(conn)
	if err != nil {
		return nil, err
	}
	return map[string]any{"peer_saw": saw.String(), "reply": reply}, nil
}
