package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

const healthcheckUsage = `Usage: metronome healthcheck [flags]

Asks a running server's /healthz and exits 0 if it answers 200, 1 otherwise
(503 while its storage fails, no answer, a refused connection), printing the
answer. For container health checks on an image without a shell or curl:

  HEALTHCHECK CMD ["/metronome", "healthcheck"]

Flags:
`

// healthcheckBodyMax bounds what is read and printed of the answer.
const healthcheckBodyMax = 4096

func healthcheckCommand(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	flags.SetOutput(stderr)
	url := flags.String("url", "http://127.0.0.1:8888/healthz", "the server's health endpoint (https:// for a server run with --tls-cert)")
	timeout := flags.Duration("timeout", 5*time.Second, "longest wait for the answer")
	insecure := flags.Bool("tls-insecure", false, "with https://, accept any certificate: the probe's address (127.0.0.1) is rarely a name the certificate holds")
	if code, done := parseFlags(flags, healthcheckUsage, args, stderr); done {
		return code
	}
	if !strings.HasPrefix(*url, "http://") && !strings.HasPrefix(*url, "https://") {
		fmt.Fprintf(stderr, "metronome healthcheck: --url %q: want http:// or https://\n", *url)
		return 2
	}
	client := http.Client{Timeout: *timeout}
	if *insecure {
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	response, err := client.Get(*url)
	if err != nil {
		fmt.Fprintln(stderr, "metronome healthcheck: unhealthy:", err)
		return 1
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(response.Body, healthcheckBodyMax))
	answer := strings.TrimSpace(string(body))
	if response.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "metronome healthcheck: unhealthy: %s: %s\n", response.Status, answer)
		return 1
	}
	fmt.Fprintln(stdout, answer)
	return 0
}
