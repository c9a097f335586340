// Package jsstore is a store.Store on NATS JetStream, the groundwork of
// cluster mode (docs/cluster.md): any node of a cluster can restore any
// session, and a node that lost a session's ownership cannot append to it.
//
// Each session is one subject of one stream (<namespace>_sessions,
// subjects <namespace>.session.<base64url id>). Every committed Batch is one
// stream message, so a batch (messages, drop and record together) is atomic.
// Every append carries the expected last sequence of the session's subject:
// the sequence this Store last appended or loaded for the session (0 for a
// session it has not seen, which must then not exist). A node that appends
// behind another's back gets ErrFenced and must stop stamping. Now and then
// a commit is followed by a checkpoint message (the whole session state),
// after which older messages of the subject are purged. Pointers live in a
// KV bucket (<namespace>_pointers), files in an object store
// (<namespace>_files), ownership leases in a KV bucket (<namespace>_owners,
// lease.go).
//
// Records and pointer values are copied on the way in and out; committed
// message data is kept without copying (store.Store.Commit allows it).
// FileCatalog and UsageReporter are not implemented yet.
package jsstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/metronome-sync/metronome/store"
)

// ErrFenced is returned by Commit when the session's subject holds a
// message this Store has not seen: another node appended (or deleted the
// session) since this one loaded it. The batch was not stored; the caller
// must stop stamping the session and hand its clients over. A later
// LoadSession reads what the other node stored. It is store.ErrFenced,
// which the host knows.
var ErrFenced = store.ErrFenced

// Defaults of Options.
const (
	// NamespaceDefault names the stream, buckets and subjects.
	NamespaceDefault = "metronome"
	// ReplicasDefault is the replication of the stream and buckets. A
	// 3-node cluster should use 3.
	ReplicasDefault = 1
	// CompactBytesMinDefault: a session's subject is compacted (a
	// checkpoint appended, older messages purged) once it holds at least
	// this many bytes that are no longer live, and at least as many as are
	// live (so rewriting the live state costs at most what it frees).
	CompactBytesMinDefault = 1 << 20
	// LeaseTTLDefault is how long an ownership lease lasts unless renewed.
	LeaseTTLDefault = 10 * time.Second
	// AppendRetryForDefault outlasts a stream leader election (at most
	// 9 s in nats-server 2.15) with time for the append itself.
	AppendRetryForDefault = 12 * time.Second
	// appendAttemptTimeout bounds one try of an append, and
	// appendRetryInterval is the pause between tries.
	appendAttemptTimeout = 2 * time.Second
	// readAttemptTimeout bounds one try of reading a session (its whole
	// subject: up to a checkpoint and the batches after it).
	readAttemptTimeout  = 5 * time.Second
	appendRetryInterval = 100 * time.Millisecond
	// messageOverheadBytes is what one stream message costs beyond its
	// payload (headers, index), counted against the compaction threshold
	// so that many tiny batches are compacted too.
	messageOverheadBytes = 128
	// requestTimeoutDefault bounds a JetStream request whose context has
	// no deadline.
	requestTimeoutDefault = 5 * time.Second
)

// Options configure a Store. The zero value works (a single node).
type Options struct {
	// Namespace prefixes every stream, bucket and subject; letters,
	// digits, '_' and '-'. Default NamespaceDefault.
	Namespace string
	// Replicas of the stream and buckets. Default ReplicasDefault.
	Replicas int
	// CompactBytesMin: see CompactBytesMinDefault.
	CompactBytesMin int64
	// LeaseTTL is the TTL of the owners bucket: a lease not renewed within
	// it expires. Default LeaseTTLDefault. Changing it for an existing
	// bucket updates the bucket.
	LeaseTTL time.Duration
	// Address is written into the leases this Store claims: where its
	// node serves clients (cluster mode forwards there). Optional.
	Address string
	// AppendRetryFor is how long an append that gets no answer (a lost
	// connection, a stream electing a new leader, which takes JetStream
	// 4-9 s after its leader died) is retried before Commit fails.
	// Default AppendRetryForDefault.
	AppendRetryFor time.Duration
}

var namespacePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate checks the options (after defaults are applied).
func (o *Options) Validate() error {
	switch {
	case !namespacePattern.MatchString(o.Namespace):
		return fmt.Errorf("jsstore: Namespace %q must be 1 to 64 letters, digits, '_' or '-'", o.Namespace)
	case o.Replicas < 1 || o.Replicas > 5:
		return fmt.Errorf("jsstore: Replicas is %d, must be 1 to 5", o.Replicas)
	case o.CompactBytesMin < 1:
		return fmt.Errorf("jsstore: CompactBytesMin is %d, must be positive", o.CompactBytesMin)
	case o.LeaseTTL < 100*time.Millisecond:
		return fmt.Errorf("jsstore: LeaseTTL is %v, must be at least 100ms", o.LeaseTTL)
	}
	return nil
}

func (o *Options) applyDefaults() {
	if o.Namespace == "" {
		o.Namespace = NamespaceDefault
	}
	if o.Replicas == 0 {
		o.Replicas = ReplicasDefault
	}
	if o.CompactBytesMin == 0 {
		o.CompactBytesMin = CompactBytesMinDefault
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = LeaseTTLDefault
	}
	if o.AppendRetryFor == 0 {
		o.AppendRetryFor = AppendRetryForDefault
	}
}

// Store is a store.Store on JetStream. It is safe for concurrent use; as
// store.Store says, calls for one session come from one goroutine at a time.
type Store struct {
	options  Options
	js       jetstream.JetStream
	stream   jetstream.Stream
	pointers jetstream.KeyValue
	owners   jetstream.KeyValue
	files    jetstream.ObjectStore
	// subjectPrefix is "<namespace>.session.".
	subjectPrefix string
	// payloadBytesMax is the largest message the server accepts.
	payloadBytesMax int

	mu     sync.Mutex
	closed bool
	// sessions holds what this Store last appended or loaded per session:
	// the fencing sequence and the state it stands for.
	sessions map[string]*sessionState
	// retries counts appends tried again (Retries).
	retries atomic.Uint64
}

// Retries returns how many append attempts got no answer and were tried
// again (a metric: JetStream elections and lost connections).
func (s *Store) Retries() uint64 { return s.retries.Load() }

var (
	_ store.Store        = (*Store)(nil)
	_ store.RecordReader = (*Store)(nil)
)

// Open creates or updates the stream and buckets and returns a Store using
// them. The caller keeps ownership of js's connection.
func Open(ctx context.Context, js jetstream.JetStream, options Options) (*Store, error) {
	options.applyDefaults()
	if err := options.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s := &Store{
		options:         options,
		js:              js,
		subjectPrefix:   options.Namespace + ".session.",
		payloadBytesMax: int(js.Conn().MaxPayload()),
		sessions:        make(map[string]*sessionState),
	}
	var err error
	streamConfig := jetstream.StreamConfig{
		Name:        options.Namespace + "_sessions",
		Description: "Metronome sessions: one subject per session, one message per committed batch",
		Subjects:    []string{s.subjectPrefix + "*"},
		Storage:     jetstream.FileStorage,
		Replicas:    options.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		// Reads go to the stream's leader: a direct get may be answered by
		// any replica, one that is behind (a load would then be fenced at
		// its first append) or one that does not answer at all (a paused
		// node), and a load would fail.
		AllowDirect: false,
		// Purges compact a session's subject; nothing else removes messages.
		DenyDelete: true,
	}
	s.stream, err = ensure(ctx, jetstream.ErrStreamNotFound,
		func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, streamConfig.Name) },
		func(ctx context.Context) (jetstream.Stream, error) { return js.CreateStream(ctx, streamConfig) })
	if err != nil {
		return nil, fmt.Errorf("jsstore: creating the sessions stream: %w", err)
	}
	pointersConfig := jetstream.KeyValueConfig{
		Bucket:   options.Namespace + "_pointers",
		History:  1,
		Storage:  jetstream.FileStorage,
		Replicas: options.Replicas,
	}
	s.pointers, err = ensure(ctx, jetstream.ErrBucketNotFound,
		func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, pointersConfig.Bucket) },
		func(ctx context.Context) (jetstream.KeyValue, error) { return js.CreateKeyValue(ctx, pointersConfig) })
	if err != nil {
		return nil, fmt.Errorf("jsstore: creating the pointers bucket: %w", err)
	}
	ownersConfig := jetstream.KeyValueConfig{
		Bucket:   options.Namespace + "_owners",
		History:  1,
		TTL:      options.LeaseTTL,
		Storage:  jetstream.FileStorage,
		Replicas: options.Replicas,
	}
	s.owners, err = ensure(ctx, jetstream.ErrBucketNotFound,
		func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, ownersConfig.Bucket) },
		func(ctx context.Context) (jetstream.KeyValue, error) { return js.CreateKeyValue(ctx, ownersConfig) })
	if err == nil {
		var status jetstream.KeyValueStatus
		if status, err = s.owners.Status(ctx); err == nil && status.TTL() != options.LeaseTTL {
			s.owners, err = js.UpdateKeyValue(ctx, ownersConfig) // a new LeaseTTL
		}
	}
	if err != nil {
		return nil, fmt.Errorf("jsstore: creating the owners bucket: %w", err)
	}
	filesConfig := jetstream.ObjectStoreConfig{
		Bucket:   options.Namespace + "_files",
		Storage:  jetstream.FileStorage,
		Replicas: options.Replicas,
	}
	s.files, err = ensure(ctx, jetstream.ErrBucketNotFound,
		func(ctx context.Context) (jetstream.ObjectStore, error) {
			return js.ObjectStore(ctx, filesConfig.Bucket)
		},
		func(ctx context.Context) (jetstream.ObjectStore, error) {
			return js.CreateObjectStore(ctx, filesConfig)
		})
	if err != nil {
		return nil, fmt.Errorf("jsstore: creating the files bucket: %w", err)
	}
	// nats.go creates buckets with direct gets, which any replica may
	// answer: one that is catching up after a partition answers "not
	// found" for a file or pointer the leader has. Reads go to the leader.
	if err := leaderReads(ctx, js, "OBJ_"+filesConfig.Bucket); err != nil {
		return nil, fmt.Errorf("jsstore: the files bucket: %w", err)
	}
	if err := leaderReads(ctx, js, "KV_"+pointersConfig.Bucket); err != nil {
		return nil, fmt.Errorf("jsstore: the pointers bucket: %w", err)
	}
	if s.files, err = js.ObjectStore(ctx, filesConfig.Bucket); err != nil { // bound again: it reads the stream's settings
		return nil, fmt.Errorf("jsstore: the files bucket: %w", err)
	}
	if s.pointers, err = js.KeyValue(ctx, pointersConfig.Bucket); err != nil {
		return nil, fmt.Errorf("jsstore: the pointers bucket: %w", err)
	}
	return s, nil
}

// leaderReads turns direct gets off for the stream, if they are on.
func leaderReads(ctx context.Context, js jetstream.JetStream, name string) error {
	stream, err := js.Stream(ctx, name)
	if err != nil {
		return err
	}
	config := stream.CachedInfo().Config
	if !config.AllowDirect {
		return nil
	}
	config.AllowDirect = false
	_, err = js.UpdateStream(ctx, config)
	return err
}

// ensure returns what get finds, or what create makes if get finds nothing
// (notFound). Nodes starting together create the same streams: creating
// only what is missing (and looking again after losing the race) avoids
// concurrent updates of one replicated stream, which JetStream can leave
// unanswered. An existing stream's settings are kept (the owners bucket's
// TTL excepted, see Open).
func ensure[T any](ctx context.Context, notFound error, get, create func(context.Context) (T, error)) (T, error) {
	found, err := get(ctx)
	if err == nil || !errors.Is(err, notFound) {
		return found, err
	}
	made, err := create(ctx)
	if err == nil {
		return made, nil
	}
	if found, getErr := get(ctx); getErr == nil {
		return found, nil // another node created it meanwhile
	}
	return made, err
}

// Close makes every later call fail with store.ErrClosed. It does not close
// the connection.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	s.sessions = nil
	return nil
}

func (s *Store) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	return nil
}

// begin checks a call's argument, the context and that the store is open.
func (s *Store) begin(ctx context.Context, validation error) error {
	if validation != nil {
		return validation
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.checkOpen()
}

// encodeToken turns a session id or pointer key into one subject token
// (ids may hold '.', '*', '>' and spaces, which subjects cannot).
func encodeToken(name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(name))
}

func decodeToken(token string) (string, error) {
	name, err := base64.RawURLEncoding.DecodeString(token)
	return string(name), err
}

// withTimeout gives ctx a deadline if it has none: nats.go requires one.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeoutDefault)
}
