//go:build js && wasm

package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall/js"
)

// Snapshots over fetch under Node.js. In a browser, net/http sends
// requests with the JavaScript fetch API. Under Node.js it does not: it
// sees a process whose argv0 starts with "node" and dials through Go's own
// net package instead, which has no network under GOOS=js (Go keeps that
// path for its own tests; go.dev/issue/57613). A Go replica under Node.js
// could then neither upload nor download a snapshot. Node.js has had
// fetch since version 18, so the session's default HTTP client calls it
// directly there (fetchTransport); elsewhere net/http is left alone.

// defaultTransport returns the transport of the session's default HTTP
// client: fetchTransport under Node.js, nil (net/http's) elsewhere.
func defaultTransport() http.RoundTripper {
	if js.Global().Get("fetch").Type() != js.TypeFunction || !netHTTPAvoidsFetch() {
		return nil
	}
	return fetchTransport{}
}

// netHTTPAvoidsFetch reports whether net/http will not use fetch here: the
// same test net/http makes.
func netHTTPAvoidsFetch() bool {
	process := js.Global().Get("process")
	return process.Type() == js.TypeObject && strings.HasPrefix(process.Get("argv0").String(), "node")
}

// fetchTransport is an http.RoundTripper that calls the JavaScript fetch
// API. It buffers the request body (snapshots are bounded by
// SnapshotBytesMax) and streams the response body.
type fetchTransport struct{}

func (fetchTransport) RoundTrip(request *http.Request) (*http.Response, error) {
	global := js.Global()
	options := global.Get("Object").New()
	options.Set("method", request.Method)
	headers := global.Get("Headers").New()
	for key, values := range request.Header {
		for _, value := range values {
			headers.Call("append", key, value)
		}
	}
	options.Set("headers", headers)
	if request.Body != nil {
		body, err := io.ReadAll(request.Body)
		request.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(body) > 0 {
			array := global.Get("Uint8Array").New(len(body))
			js.CopyBytesToJS(array, body)
			options.Set("body", array)
		}
	}
	abort := global.Get("AbortController").New()
	options.Set("signal", abort.Get("signal"))
	response, err := await(request.Context(), abort, global.Call("fetch", request.URL.String(), options))
	if err != nil {
		return nil, fmt.Errorf("fetch %s %s: %w", request.Method, request.URL, err)
	}
	header := http.Header{}
	entries := response.Get("headers").Call("entries")
	for next := entries.Call("next"); !next.Get("done").Bool(); next = entries.Call("next") {
		pair := next.Get("value")
		header.Add(pair.Index(0).String(), pair.Index(1).String())
	}
	length := int64(-1)
	if declared, err := strconv.ParseInt(header.Get("Content-Length"), 10, 64); err == nil && declared >= 0 {
		length = declared
	}
	uncompressed := false
	if strings.EqualFold(header.Get("Content-Encoding"), "gzip") {
		// fetch has decoded the body already.
		header.Del("Content-Encoding")
		header.Del("Content-Length")
		length, uncompressed = -1, true
	}
	var body io.ReadCloser = http.NoBody
	if stream := response.Get("body"); stream.Truthy() {
		body = &fetchBody{context: request.Context(), abort: abort, reader: stream.Call("getReader")}
	}
	status := response.Get("status").Int()
	return &http.Response{
		Status: strconv.Itoa(status) + " " + http.StatusText(status), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: header, Body: body, ContentLength: length, Uncompressed: uncompressed, Request: request,
	}, nil
}

// fetchBody reads a fetch response's body stream.
type fetchBody struct {
	context context.Context
	abort   js.Value
	reader  js.Value
	pending []byte
	err     error // sticky
}

func (b *fetchBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		chunk, err := await(b.context, b.abort, b.reader.Call("read"))
		switch {
		case err != nil:
			b.err = err
		case chunk.Get("done").Bool():
			b.err = io.EOF
		default:
			value := chunk.Get("value")
			b.pending = make([]byte, value.Get("byteLength").Int())
			js.CopyBytesToGo(b.pending, value)
		}
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// Close stops the transfer if the body was not read to its end. It
// aborts the fetch rather than cancel the stream: abort returns no promise
// that could be rejected with nobody to handle it (which would end a
// Node.js process).
func (b *fetchBody) Close() error {
	if b.err == nil {
		b.err = errors.New("client: read from a closed fetch body")
		b.abort.Call("abort")
	}
	return nil
}

// await waits for promise to settle. When ctx ends first it aborts the
// fetch and waits for the rejection that follows, so that no callback runs
// after it was released.
func await(ctx context.Context, abort, promise js.Value) (js.Value, error) {
	type settled struct {
		value js.Value
		err   error
	}
	done := make(chan settled, 1)
	fulfilled := js.FuncOf(func(_ js.Value, args []js.Value) any {
		done <- settled{value: args[0]}
		return nil
	})
	defer fulfilled.Release()
	rejected := js.FuncOf(func(_ js.Value, args []js.Value) any {
		done <- settled{err: jsError(args[0])}
		return nil
	})
	defer rejected.Release()
	promise.Call("then", fulfilled, rejected)
	select {
	case result := <-done:
		return result.value, result.err
	case <-ctx.Done():
		abort.Call("abort")
		<-done
		return js.Undefined(), ctx.Err()
	}
}

// jsError describes a rejected promise's reason, with its cause (Node's
// fetch says "fetch failed" and puts why, ECONNREFUSED say, in cause).
func jsError(reason js.Value) error {
	if !reason.Truthy() {
		return errors.New("rejected without a reason")
	}
	text := reason.Call("toString").String()
	if cause := reason.Get("cause"); cause.Truthy() {
		text += ": " + cause.Call("toString").String()
	}
	return errors.New(text)
}
