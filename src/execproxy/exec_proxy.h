// The exec runtime's instance: `nubo __exec-proxy`, run in the sandbox in
// place of a Node stem, so a deployment in any language needs nothing but
// its own interpreter on the server.
//
// It speaks the instance protocol (docs/protocol.md) on descriptor 3:
// HELLO at once; on SPECIALIZE it starts the deployment's command (`entry`,
// in the deployment's folder, with $PORT and the manifest's env), waits for
// it to accept a connection on 127.0.0.1:$PORT (30 s at most; its exit
// first is the error), and answers READY. Each REQUEST then becomes one
// HTTP/1.1 exchange with the program over loopback: the request body
// streamed to it (chunked when its length is unknown), the response
// streamed back under the stream's window. Bodiless requests share
// kept-alive connections (up to 32 idle); one the program closed meanwhile
// is replaced and the request sent again. A WebSocket handshake (UPGRADE)
// the program accepts with 101 turns the exchange into a tunnel of the
// connection's bytes both ways. CANCEL closes the exchange's connection.
//
// The program's output is the instance's (stdout/stderr inherited). If it
// exits after READY, so does the proxy (the gateway answers 502 and starts
// another instance); when the gateway closes the channel, the program is
// killed and the proxy exits.
#pragma once

namespace nubo::execproxy {

int execProxyMain(int argc, char** argv);

}  // namespace nubo::execproxy
