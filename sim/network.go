package sim

// The simulated network. A connection is a WebSocket over TCP: each
// direction delivers frames reliably and in order, unless the connection
// breaks. Packet-level faults are applied below that guarantee, the way TCP
// experiences them: a lost transmission is retransmitted after a timeout
// that doubles per loss, a duplicated packet is discarded by reassembly,
// and a packet that overtakes an earlier one waits for it (head-of-line
// blocking). So loss, duplication and reordering show up as delay, never
// as missing or repeated frames — which is what a client of a real
// reflector sees. Partitions hold packets until they heal; a broken
// connection (a reset, a crashed peer) discards what is in flight and each
// side learns of it when a reset packet reaches it, or never, if it is
// partitioned away (then its timeouts must find out).

// packetKind says what a packet carries.
type packetKind int

const (
	packetFrame    packetKind = iota // a WebSocket text frame
	packetOpen                       // client → reflector: the connection request (SYN and upgrade)
	packetAccepted                   // reflector → client: the upgrade succeeded
	packetRefused                    // reflector → client: nothing listens (the reflector is down)
	packetClose                      // a close frame with a code and reason
	packetReset                      // the connection broke
)

type packet struct {
	kind    packetKind
	data    []byte
	code    int
	reason  string
	arrival int64 // earliest time it can be delivered
}

// direction is one way of a connection: a FIFO of packets in flight.
type direction struct {
	conn     *conn
	toServer bool
	queue    []packet
	last     int64 // arrival time of the last packet queued (FIFO order)
	// scheduled: a delivery event for the head is pending. stalled: the
	// head is held by a partition.
	scheduled bool
	stalled   bool
	dead      bool // the receiving side is gone: drop everything
	frameGap  int64
}

// conn is one connection between a client and the reflector.
type conn struct {
	id       uint64
	client   *client
	linkConn uint64 // the link's ConnID for this connection
	session  string

	toServer, toClient *direction

	// node is the reflector node that serves the connection (the one the
	// load balancer chose, or the owner it was forwarded to); via is the
	// node that forwards it (nil: direct), in its process viaIncarnation.
	// forwarded: the upgrade came through another node, and is served or
	// refused, never forwarded again. abandoned: the client closed the
	// connection before the node accepted it (cluster.go).
	node           *simReflector
	via            *simReflector
	viaIncarnation int
	forwarded      bool
	abandoned      bool

	// Reflector side: accepted by the node's process incarnation, still
	// open.
	incarnation  int
	serverOpen   bool
	serverClosed bool
	// Client side: the client knows it is open and has not let go of it.
	clientOpen   bool
	clientClosed bool

	// What the reflector has queued and the client has not read yet, for
	// tick skipping and the slow-client close.
	undelivered int

	// checker state: what this connection delivered to the client.
	synced   bool
	lastSeq  uint32
	lastTime int64
	timeline string
}

func (w *World) newConn(c *client, linkConn uint64, session string) *conn {
	w.nextConn++
	k := &conn{id: w.nextConn, client: c, linkConn: linkConn, session: session, node: w.balance()}
	k.toServer = &direction{conn: k, toServer: true}
	k.toClient = &direction{conn: k}
	if c.slow {
		k.toClient.frameGap = w.scenario.SlowFrameGapMs
	}
	w.conns[k.id] = k
	return k
}

// latency draws one frame's transit time, with the packet-level faults.
func (w *World) latency(c *client) int64 {
	s := &w.scenario
	d := w.rand.Between(c.latencyMinMs, c.latencyMaxMs)
	if w.rand.Chance(s.SpikeChance) {
		d += w.rand.Between(1, s.SpikeMaxMs)
		w.count(FaultDelay)
	}
	rto := s.RetransmitMs
	for attempts := 0; attempts < 10 && w.rand.Chance(s.LossChance); attempts++ {
		d += rto
		rto *= 2
		w.count(FaultLoss)
	}
	if w.rand.Chance(s.DuplicateChance) {
		w.count(FaultDuplicate) // the copy arrives and is discarded
	}
	if w.rand.Chance(s.ReorderChance) {
		// This packet is overtaken by the next one, which then waits for
		// it: model it as this one taking a few ms longer.
		d += w.rand.Between(1, 20)
		w.count(FaultReorder)
	}
	return d
}

// send queues a packet on a direction.
func (w *World) send(d *direction, p packet) {
	if d.dead {
		return
	}
	p.arrival = max(w.now+w.latency(d.conn.client), d.last+d.frameGap)
	d.last = p.arrival
	d.queue = append(d.queue, p)
	if d == d.conn.toClient && p.kind == packetFrame {
		d.conn.undelivered++
	}
	w.pump(d)
}

// reset breaks a direction: what is in flight is lost, and a reset packet
// tells the receiver (if it gets through).
func (w *World) reset(d *direction) {
	if d.dead {
		return
	}
	if d == d.conn.toClient {
		d.conn.undelivered = 0
	}
	d.queue = d.queue[:0]
	w.send(d, packet{kind: packetReset})
}

func (w *World) blocked(d *direction) bool {
	c := d.conn.client
	if d.toServer {
		return c.partitionUp
	}
	return c.partitionDown
}

// pump schedules the delivery of the head packet of d.
func (w *World) pump(d *direction) {
	if d.scheduled || d.stalled || len(d.queue) == 0 {
		return
	}
	d.scheduled = true
	at := max(d.queue[0].arrival, w.now)
	w.queue.schedule(at, func() { w.deliverHead(d) })
}

func (w *World) deliverHead(d *direction) {
	d.scheduled = false
	if d.dead || len(d.queue) == 0 {
		return
	}
	if v := d.conn.via; v != nil && v.incarnation == d.conn.viaIncarnation && w.now < v.pausedUntil {
		// The forwarding node is paused: it copies nothing until it wakes.
		d.scheduled = true
		w.queue.schedule(v.pausedUntil, func() { w.deliverHead(d) })
		return
	}
	if w.blocked(d) {
		d.stalled = true
		return
	}
	p := d.queue[0]
	d.queue = d.queue[1:]
	if len(d.queue) == 0 {
		d.queue = nil
	}
	if d == d.conn.toClient && p.kind == packetFrame {
		d.conn.undelivered--
	}
	if d.toServer {
		d.conn.node.receive(d.conn, p)
	} else {
		d.conn.client.receive(d.conn, p)
	}
	w.pump(d)
}

// resume lets stalled directions of client c go on: held packets are
// retransmitted and arrive one retransmission timeout later.
func (w *World) resume(c *client) {
	for _, id := range sortedUint64Keys(c.conns) {
		k := c.conns[id]
		for _, d := range []*direction{k.toServer, k.toClient} {
			if d.stalled && !w.blocked(d) {
				d.stalled = false
				for i := range d.queue {
					d.queue[i].arrival = max(d.queue[i].arrival, w.now+w.scenario.RetransmitMs)
				}
				w.pump(d)
			}
		}
	}
}
