package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable writes a result as a readable table; a run that lost,
// duplicated or reordered messages ends with a loud FAIL line.
func (r *LatencyResult) WriteTable(w io.Writer) error {
	ms := func(us int64) string { return fmt.Sprintf("%.3f ms", float64(us)/1000) }
	table := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name string, format string, args ...any) {
		fmt.Fprintf(table, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
	row("scenario", "%s  %s", r.Scenario, r.URL)
	phases := "each client at its own phase"
	if r.Burst {
		phases = "each session's clients together (--burst)"
	}
	row("load", "%d sessions × %d clients × %g msg/s, %gs (+%gs warmup), %d-byte payload, %s",
		r.Sessions, r.Clients, r.Rate, r.DurationSeconds, r.WarmupSeconds, r.PayloadBytes, phases)
	row("connections", "%d", r.Connections)
	row("sent", "%d (%.0f msg/s)", r.Sent, r.SendRate)
	row("delivered", "%d of %d expected (%.0f msg/s)", r.Delivered, r.Expected, r.DeliveryRate)
	row("missing / duplicate / out-of-order", "%d / %d / %d", r.Missing, r.Duplicates, r.OutOfOrder)
	row("unexpected / connection errors", "%d / %d", r.Unexpected, r.ConnectionErrs)
	row("frames", "%d RECV (%d users), %d TICK", r.RecvFrames, r.UsersFrames, r.Ticks)
	row("latency count", "%d", r.Latency.Count)
	row("latency p50 / p90", "%s / %s", ms(r.Latency.P50Us), ms(r.Latency.P90Us))
	row("latency p99 / p99.9", "%s / %s", ms(r.Latency.P99Us), ms(r.Latency.P999Us))
	row("latency max / mean", "%s / %s", ms(r.Latency.MaxUs), ms(r.Latency.MeanUs))
	if s := r.Server; s != nil {
		row("server pid", "%d", s.PID)
		row("server RSS end / peak", "%.1f MiB / %.1f MiB", float64(s.RSSEndKiB)/1024, float64(s.RSSPeakKiB)/1024)
		row("server CPU", "%.2f s in %.1f s = %.0f%% of one core", s.CPUSeconds, s.WindowSeconds, s.CPUPercentCore)
	}
	if err := table.Flush(); err != nil {
		return err
	}
	if !r.OK {
		_, err := fmt.Fprintf(w, "\nFAIL: messages were lost, duplicated or reordered (missing %d, duplicates %d, out-of-order %d, unexpected %d, connection errors %d)%s\n",
			r.Missing, r.Duplicates, r.OutOfOrder, r.Unexpected, r.ConnectionErrs, firstError(r.FirstError))
		return err
	}
	_, err := fmt.Fprintln(w, "\nOK: every client received every message of its session exactly once, in seq order")
	return err
}

func firstError(message string) string {
	if message == "" {
		return ""
	}
	return "; first error: " + message
}

// WriteJSON writes a result as one indented JSON object.
func (r *LatencyResult) WriteJSON(w io.Writer) error {
	encoder := json.NewEncoder(w)
	encoder.SetIndent("", "  ")
	return encoder.Encode(r)
}

// Passed reports whether every message arrived exactly once, in order.
func (r *LatencyResult) Passed() bool { return r.OK }
