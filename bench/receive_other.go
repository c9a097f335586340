//go:build !linux

package bench

// startReceivers starts one receive goroutine per client (the Linux build
// uses epoll loops instead). stop closes the connections, which ends the
// goroutines; each closes its client's readerDone.
func startReceivers(clients []*loadClient, sendsMax int) (stop func(), err error) {
	for _, client := range clients {
		client.startReader(sendsMax)
	}
	return func() {
		for _, client := range clients {
			client.close()
		}
	}, nil
}
