// A Workload API client on grpc-java over a Unix socket with Netty's epoll transport, which the
// interoperability tests run against spire-rs's agent. The channel keeps grpc-java's defaults (in
// particular its own :authority, the raw socket path), as a Java workload's would.
//
//   WorkloadClient x509 --socket P
//   WorkloadClient jwt  --socket P --audience A [--spiffe-id ID]
//
// Prints one JSON object on stdout. A failed RPC prints {"error_code","details"} on stdout, the full
// error on stderr, and exits with status 3.
//
// In the default package because workload.proto has no package (its service must be plain
// `SpiffeWorkloadAPI`), so protoc puts the message classes (`Workload`) there.

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.MetadataUtils;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollDomainSocketChannel;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.unix.DomainSocketAddress;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

public final class WorkloadClient {
  private static final String SERVICE = "SpiffeWorkloadAPI";

  // Hand-written descriptors (no protoc-gen-grpc-java): the path and marshallers are all a stub adds.
  private static final MethodDescriptor<Workload.X509SVIDRequest, Workload.X509SVIDResponse> FETCH_X509 =
      MethodDescriptor.<Workload.X509SVIDRequest, Workload.X509SVIDResponse>newBuilder()
          .setType(MethodDescriptor.MethodType.SERVER_STREAMING)
          .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, "FetchX509SVID"))
          .setRequestMarshaller(ProtoUtils.marshaller(Workload.X509SVIDRequest.getDefaultInstance()))
          .setResponseMarshaller(ProtoUtils.marshaller(Workload.X509SVIDResponse.getDefaultInstance()))
          .build();

  private static final MethodDescriptor<Workload.JWTSVIDRequest, Workload.JWTSVIDResponse> FETCH_JWT =
      MethodDescriptor.<Workload.JWTSVIDRequest, Workload.JWTSVIDResponse>newBuilder()
          .setType(MethodDescriptor.MethodType.UNARY)
          .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, "FetchJWTSVID"))
          .setRequestMarshaller(ProtoUtils.marshaller(Workload.JWTSVIDRequest.getDefaultInstance()))
          .setResponseMarshaller(ProtoUtils.marshaller(Workload.JWTSVIDResponse.getDefaultInstance()))
          .build();

  private static final MethodDescriptor<Workload.ValidateJWTSVIDRequest, Workload.ValidateJWTSVIDResponse>
      VALIDATE_JWT =
          MethodDescriptor.<Workload.ValidateJWTSVIDRequest, Workload.ValidateJWTSVIDResponse>newBuilder()
              .setType(MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, "ValidateJWTSVID"))
              .setRequestMarshaller(
                  ProtoUtils.marshaller(Workload.ValidateJWTSVIDRequest.getDefaultInstance()))
              .setResponseMarshaller(
                  ProtoUtils.marshaller(Workload.ValidateJWTSVIDResponse.getDefaultInstance()))
              .build();

  public static void main(String[] argv) throws Exception {
    if (argv.length < 1) {
      usage();
    }
    String command = argv[0];
    Map<String, String> flags = new HashMap<>();
    for (int i = 1; i + 1 < argv.length; i += 2) {
      flags.put(argv[i], argv[i + 1]);
    }
    String socket = flags.get("--socket");
    if (socket == null) {
      usage();
    }
    // Fail loudly rather than fall back to NIO if the native transport did not load.
    Epoll.ensureAvailability();

    EpollEventLoopGroup group = new EpollEventLoopGroup(1);
    ManagedChannel managed =
        NettyChannelBuilder.forAddress(new DomainSocketAddress(socket))
            .eventLoopGroup(group)
            .channelType(EpollDomainSocketChannel.class)
            .usePlaintext()
            .build();
    Metadata header = new Metadata();
    header.put(Metadata.Key.of("workload.spiffe.io", Metadata.ASCII_STRING_MARSHALLER), "true");
    Channel channel = ClientInterceptors.intercept(managed, MetadataUtils.newAttachHeadersInterceptor(header));
    CallOptions options = CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS);
    int status = 0;
    try {
      String out;
      switch (command) {
        case "x509":
          out = x509(channel, options);
          break;
        case "jwt":
          out = jwt(channel, options, flags.get("--audience"), flags.get("--spiffe-id"));
          break;
        default:
          usage();
          return;
      }
      System.out.println(out);
    } catch (StatusRuntimeException e) {
      System.err.println(e);
      System.out.println(
          "{\"error_code\":" + str(e.getStatus().getCode().name())
              + ",\"details\":" + str(String.valueOf(e.getStatus().getDescription())) + "}");
      status = 3;
    } finally {
      managed.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      group.shutdownGracefully(0, 1, TimeUnit.SECONDS).await(5, TimeUnit.SECONDS);
    }
    System.exit(status);
  }

  private static String x509(Channel channel, CallOptions options) throws Exception {
    ClientCall<Workload.X509SVIDRequest, Workload.X509SVIDResponse> call = channel.newCall(FETCH_X509, options);
    Iterator<Workload.X509SVIDResponse> stream =
        ClientCalls.blockingServerStreamingCall(call, Workload.X509SVIDRequest.getDefaultInstance());
    Workload.X509SVIDResponse first = stream.next();
    call.cancel("first response is enough", null);

    // The JDK parses the DER the agent sent: the chain, and the leaf's URI SAN.
    CertificateFactory x509 = CertificateFactory.getInstance("X.509");
    List<String> ids = new ArrayList<>();
    List<String> hints = new ArrayList<>();
    List<String> uriSans = new ArrayList<>();
    List<String> certCounts = new ArrayList<>();
    List<String> bundleCounts = new ArrayList<>();
    for (Workload.X509SVID svid : first.getSvidsList()) {
      ids.add(str(svid.getSpiffeId()));
      hints.add(str(svid.getHint()));
      Collection<? extends Certificate> chain =
          x509.generateCertificates(new ByteArrayInputStream(svid.getX509Svid().toByteArray()));
      certCounts.add(Integer.toString(chain.size()));
      uriSans.add(str(uriSan((X509Certificate) chain.iterator().next())));
      Collection<? extends Certificate> bundle =
          x509.generateCertificates(new ByteArrayInputStream(svid.getBundle().toByteArray()));
      bundleCounts.add(Integer.toString(bundle.size()));
    }
    return "{\"transport\":\"epoll\",\"spiffe_ids\":" + list(ids) + ",\"hints\":" + list(hints)
        + ",\"uri_sans\":" + list(uriSans) + ",\"cert_counts\":" + list(certCounts)
        + ",\"bundle_cert_counts\":" + list(bundleCounts) + "}";
  }

  private static String jwt(Channel channel, CallOptions options, String audience, String spiffeId) {
    if (audience == null) {
      usage();
    }
    Workload.JWTSVIDRequest.Builder request = Workload.JWTSVIDRequest.newBuilder().addAudience(audience);
    if (spiffeId != null) {
      request.setSpiffeId(spiffeId);
    }
    Workload.JWTSVIDResponse fetched = ClientCalls.blockingUnaryCall(channel, FETCH_JWT, options, request.build());
    if (fetched.getSvidsCount() == 0) {
      throw new IllegalStateException("FetchJWTSVID returned no SVID");
    }
    Workload.JWTSVID svid = fetched.getSvids(0);
    Workload.ValidateJWTSVIDResponse validated =
        ClientCalls.blockingUnaryCall(
            channel,
            VALIDATE_JWT,
            options,
            Workload.ValidateJWTSVIDRequest.newBuilder().setAudience(audience).setSvid(svid.getSvid()).build());
    // The claims as the token carries them (a JSON object already).
    String[] parts = svid.getSvid().split("\\.");
    String claims = new String(Base64.getUrlDecoder().decode(parts[1]), StandardCharsets.UTF_8);
    List<String> ids = new ArrayList<>();
    for (Workload.JWTSVID s : fetched.getSvidsList()) {
      ids.add(str(s.getSpiffeId()));
    }
    return "{\"transport\":\"epoll\",\"spiffe_ids\":" + list(ids) + ",\"token_parts\":" + parts.length
        + ",\"validated_spiffe_id\":" + str(validated.getSpiffeId()) + ",\"claims\":" + claims + "}";
  }

  private static String uriSan(X509Certificate cert) throws Exception {
    Collection<List<?>> sans = cert.getSubjectAlternativeNames();
    if (sans != null) {
      for (List<?> san : sans) {
        if (Integer.valueOf(6).equals(san.get(0))) {
          return (String) san.get(1);
        }
      }
    }
    return "";
  }

  private static String list(List<String> jsonValues) {
    return "[" + String.join(",", jsonValues) + "]";
  }

  /** A JSON string literal. */
  private static String str(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') {
        b.append('\\').append(c);
      } else if (c < 0x20) {
        b.append(String.format("\\u%04x", (int) c));
      } else {
        b.append(c);
      }
    }
    return b.append('"').toString();
  }

  private static void usage() {
    System.err.println("usage: WorkloadClient x509|jwt --socket PATH [--audience A] [--spiffe-id ID]");
    System.exit(2);
  }
}
