package protocol

// WebSocket close codes (docs/protocol.md §5). Codes below 4100 tell the client to
// reconnect; codes from 4100 on are fatal for the standard client.
const (
	// CloseNormal is a deliberate leave by the client. A server never uses
	// it: the standard client does not reconnect after a 1000 from the server.
	CloseNormal = 1000
	// CloseUnknownSession: TICKS, SNAP, SAVE or TUTTI without a joined session.
	CloseUnknownSession = 4000
	// CloseSlowClient: the client does not read fast enough; its outbound
	// queue is full. The client reconnects and resyncs.
	CloseSlowClient = 4001
	// CloseInactive: nothing received from the client for too long.
	CloseInactive = 4002
	// CloseReconnect: the server is shutting down or restarting a session;
	// please reconnect.
	CloseReconnect = 4003
	// CloseOutdatedProtocol: no session id in the URL, or JOIN without a
	// truthy version.
	CloseOutdatedProtocol = 4100
	// CloseBadAppID: SAVE for a session without appId or persistentId.
	CloseBadAppID = 4101
	// CloseMalformed: a frame that is not a JSON object, or whose fields
	// have the wrong type or violate a limit.
	CloseMalformed = 4102
	// CloseBadAPIKey: JOIN without apiKey.
	CloseBadAPIKey = 4103
	// CloseTooManyFrames: the client exceeded the frame rate limit.
	CloseTooManyFrames = 4104
	// CloseServerError: an unexpected failure handling the frame.
	CloseServerError = 4109
	// CloseNeverJoined: the connection never sent JOIN.
	CloseNeverJoined = 4121
)

// Close codes sent by clients (docs/protocol.md §5.2).
const (
	// CloseClientError: a client-side error (no SYNC in time, reflector
	// silent, a frame the client cannot use, a sequence gap); the client
	// reconnects. Same number as CloseUnknownSession, sent the other way.
	CloseClientError = 4000
	// CloseClientDormant: the standard client went dormant (its page was
	// hidden) and left; it rejoins when it wakes. Although it is above 4100,
	// it is not fatal (CloseIsFatal).
	CloseClientDormant = 4110
	// CloseClientFatal: a fatal client-side error (wrong password, a
	// payload that cannot be decrypted); the client does not reconnect.
	CloseClientFatal = 4200
)

// CloseFatalMin is the lowest fatal close code: the standard client does not
// reconnect after a close with a code from CloseFatalMin on, except
// CloseClientDormant.
const CloseFatalMin = 4100

// CloseIsFatal reports whether the standard client gives up (rather than
// reconnects) after a close with code, as the Croquet client decides it.
func CloseIsFatal(code int) bool {
	return code >= CloseFatalMin && code != CloseClientDormant
}

// CloseCodeText returns the standard reason text for a close code.
func CloseCodeText(code int) string {
	switch code {
	case CloseNormal:
		return "normal"
	case CloseUnknownSession:
		return "unknown session"
	case CloseSlowClient:
		return "client unresponsive"
	case CloseInactive:
		return "client inactive"
	case CloseReconnect:
		return "please reconnect"
	case CloseOutdatedProtocol:
		return "outdated protocol"
	case CloseBadAppID:
		return "bad appId"
	case CloseMalformed:
		return "malformed message"
	case CloseBadAPIKey:
		return "bad apiKey"
	case CloseTooManyFrames:
		return "too many frames"
	case CloseServerError:
		return "unknown error"
	case CloseNeverJoined:
		return "client never joined"
	}
	return "closed"
}

// INFO codes the reflector sends (docs/protocol.md §6B).
const (
	// InfoSnapshotNeeded: the message buffer is filling up; a snapshot
	// would empty it.
	InfoSnapshotNeeded = "SNAPSHOT_NEEDED"
	// InfoMessageRejected: the sender's message was not stamped because
	// the buffer is full.
	InfoMessageRejected = "MESSAGE_REJECTED"
)
