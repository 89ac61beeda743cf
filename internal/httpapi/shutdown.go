package httpapi

import "time"

// Shutdown order (Server.Shutdown, after the caller's shutdown delay during
// which /readyz already answers 503), carried out by evhttp.Server.Shutdown:
//
//  1. the listener closes: new connections are refused, or with
//     SO_REUSEPORT go to the process taking over the port;
//  2. every response from then on carries Connection: close, and
//     keep-alive connections get up to idleCloseGrace to bring their next
//     request, which is answered;
//  3. the connections still idle are closed, and the requests in flight
//     are answered before their connections close.
//
// Closing an idle keep-alive connection at once loses the request its
// client may be sending at that moment: the client sees the connection
// closed before any byte of a response and cannot know whether the
// request was seen. A client that got a response with Connection: close
// stops using the connection by itself.
const idleCloseGrace = time.Second
