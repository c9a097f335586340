package server

import (
	"context"
	"log/slog"
	"strings"
)

// Tokens are credentials, and they travel in URLs: the snapshot and
// persisted-data URLs that clients put into SNAP and SAVE carry their
// uploader's /k/<token>/ prefix, and the session logs them. The server's
// logger therefore goes through redactingHandler, which replaces every
// token in a URL path by "<token>" in messages and string attributes, so
// that log files never hold one.

// redactedToken stands in for a token in logs.
const redactedToken = "<token>"

// redactTokens replaces the token of every "/k/<token>/" in text.
func redactTokens(text string) string {
	if !strings.Contains(text, tokenPathPrefix) {
		return text
	}
	var out strings.Builder
	for {
		before, after, found := strings.Cut(text, tokenPathPrefix)
		out.WriteString(before)
		if !found {
			return out.String()
		}
		out.WriteString(tokenPathPrefix)
		end := strings.IndexAny(after, "/ \t\n\"'")
		if end < 0 {
			end = len(after)
		}
		if end > 0 {
			out.WriteString(redactedToken)
		}
		text = after[end:]
	}
}

// redactingHandler is a slog.Handler that redacts tokens before passing
// records on.
type redactingHandler struct {
	inner slog.Handler
}

func (h redactingHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h redactingHandler) Handle(ctx context.Context, record slog.Record) error {
	redacted := slog.NewRecord(record.Time, record.Level, redactTokens(record.Message), record.PC)
	record.Attrs(func(attr slog.Attr) bool {
		redacted.AddAttrs(redactAttr(attr))
		return true
	})
	return h.inner.Handle(ctx, redacted)
}

func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	redacted := make([]slog.Attr, len(attrs))
	for i, attr := range attrs {
		redacted[i] = redactAttr(attr)
	}
	return redactingHandler{inner: h.inner.WithAttrs(redacted)}
}

func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{inner: h.inner.WithGroup(name)}
}

// redactAttr redacts string values, errors and other values that print
// as text (fmt.Stringer), and the attributes of groups.
func redactAttr(attr slog.Attr) slog.Attr {
	value := attr.Value.Resolve()
	switch value.Kind() {
	case slog.KindString:
		return slog.String(attr.Key, redactTokens(value.String()))
	case slog.KindGroup:
		group := value.Group()
		redacted := make([]any, len(group))
		for i, member := range group {
			redacted[i] = redactAttr(member)
		}
		return slog.Group(attr.Key, redacted...)
	case slog.KindAny:
		switch v := value.Any().(type) {
		case error:
			return slog.String(attr.Key, redactTokens(v.Error()))
		case interface{ String() string }:
			return slog.String(attr.Key, redactTokens(v.String()))
		}
	}
	return slog.Attr{Key: attr.Key, Value: value}
}
