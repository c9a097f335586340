// Package cluster is cluster mode (docs/cluster.md): several metronome
// serve processes, each a node, share their sessions through NATS
// JetStream (store/jsstore), and every session is stamped by exactly one
// node at a time, its owner.
//
//   - nats.go starts the NATS server a node embeds (JetStream on, routes to
//     its peers) or connects to an external cluster;
//   - package cluster/lease is the pure rule for keeping one ownership
//     lease: when to renew, when to stop stamping;
//   - node.go is the node as the server sees it (server.Cluster): who owns
//     a session (the server forwards its clients there), claiming a session
//     for this node, keeping its lease, and telling the session to stop
//     when the lease is lost.
//
// The consensus is JetStream's: leases are compare-and-set writes to a KV
// bucket with a TTL, and every append to a session is conditional on the
// last sequence its writer saw, so a deposed owner cannot store anything
// (store.ErrFenced). This package adds no protocol of its own between
// nodes.
package cluster
