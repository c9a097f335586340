package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"
)

// Limits of a saturation ramp.
const (
	// SaturationStepsMax bounds the number of load steps of one ramp.
	SaturationStepsMax = 30
	// generatorBoundFraction: a step whose achieved send rate is below this
	// fraction of the offered rate measured the load generator, not the
	// reflector.
	generatorBoundFraction = 0.9
	// SaturationRatePerClientMax keeps every client under the reflector's
	// per-connection frame limit (200 frames/s, closed with 4104 above):
	// the ramp saturates the reflector with more clients, not with one
	// client flooding.
	SaturationRatePerClientMax = 190.0
)

// SaturationConfig describes the saturation ramp: the reflect-latency
// scenario at Sessions × Clients, run again and again with the rate per
// client multiplied by Factor each step (from StartRate), until the p99
// latency exceeds P99Bound, a message is lost, duplicated or reordered,
// the load generator cannot send the offered load, or StepsMax steps ran.
type SaturationConfig struct {
	// Step is the latency configuration of every step (its Rate is
	// replaced; Duration and Warmup are per step).
	Step      LatencyConfig
	StartRate float64
	Factor    float64
	StepsMax  int
	P99Bound  time.Duration
}

// DefaultSaturationConfig is the configuration of the flags' defaults: the
// 100 × 10 grid of the targets.
func DefaultSaturationConfig() SaturationConfig {
	step := DefaultLatencyConfig()
	step.Sessions, step.Clients = 100, 10
	step.Duration, step.Warmup = 5*time.Second, time.Second
	return SaturationConfig{Step: step, StartRate: 5, Factor: 1.5, StepsMax: 12, P99Bound: 100 * time.Millisecond}
}

// Validate reports a configuration outside the limits, naming the field.
func (c *SaturationConfig) Validate() error {
	step := c.Step
	step.Rate = c.StartRate
	if err := step.Validate(); err != nil {
		return err
	}
	switch {
	case !(c.Factor > 1 && c.Factor <= 10):
		return fmt.Errorf("factor %v: must be in (1, 10]", c.Factor)
	case c.StepsMax < 1 || c.StepsMax > SaturationStepsMax:
		return fmt.Errorf("steps %d: must be in [1, %d] (SaturationStepsMax)", c.StepsMax, SaturationStepsMax)
	case c.P99Bound <= 0:
		return fmt.Errorf("p99-bound %v: must be > 0", c.P99Bound)
	}
	return nil
}

// SaturationStep is the outcome of one load step.
type SaturationStep struct {
	RatePerClient float64        `json:"rate_per_client"`
	OfferedRate   float64        `json:"offered_inputs_per_second"`
	SendRate      float64        `json:"inputs_per_second"`
	DeliveryRate  float64        `json:"deliveries_per_second"`
	Latency       LatencySummary `json:"latency"`
	Lost          int64          `json:"missing_duplicated_or_reordered"`
	// ServerCPUPercent and ServerCPUMicrosPerDelivery need the server's
	// pid; GeneratorCPUPercent is this process.
	ServerCPUPercent           float64 `json:"server_cpu_percent_of_core,omitempty"`
	ServerCPUMicrosPerDelivery float64 `json:"server_cpu_us_per_delivery,omitempty"`
	ServerRSSPeakKiB           int64   `json:"server_rss_peak_kib,omitempty"`
	GeneratorCPUPercent        float64 `json:"generator_cpu_percent_of_core"`
	// Passed: no loss and p99 within the bound; Stop says why the ramp
	// ended at this step ("" if it went on).
	Passed bool   `json:"passed"`
	Stop   string `json:"stop,omitempty"`
}

// SaturationResult is the ramp: every step and the highest one that held.
type SaturationResult struct {
	Scenario  string           `json:"scenario"`
	URL       string           `json:"url"`
	Sessions  int              `json:"sessions"`
	Clients   int              `json:"clients_per_session"`
	P99Bound  float64          `json:"p99_bound_ms"`
	Steps     []SaturationStep `json:"steps"`
	Sustained *SaturationStep  `json:"max_sustained,omitempty"`
	// GeneratorBound: the ramp stopped because the load generator could
	// not send the offered load; the reflector's limit is higher.
	GeneratorBound bool `json:"generator_bound"`
	OK             bool `json:"ok"`
}

// RunSaturation runs the ramp.
func RunSaturation(ctx context.Context, config SaturationConfig) (*SaturationResult, error) {
	if err := config.Validate(); err != nil {
		return nil, err
	}
	step := config.Step
	result := &SaturationResult{Scenario: "saturation", URL: step.URL, Sessions: step.Sessions, Clients: step.Clients,
		P99Bound: float64(config.P99Bound.Microseconds()) / 1000}
	prefix := step.SessionPrefix
	if prefix == "" {
		prefix = fmt.Sprintf("bench-%d", time.Now().UnixNano())
	}
	rate := config.StartRate
	for i := 0; i < config.StepsMax; i++ {
		if rate > SaturationRatePerClientMax {
			if len(result.Steps) > 0 {
				result.Steps[len(result.Steps)-1].Stop = fmt.Sprintf("the next step exceeds %v msg/s per client (SaturationRatePerClientMax, under the reflector's frame limit): use more sessions or clients", SaturationRatePerClientMax)
			}
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		step.Rate = rate
		step.SessionPrefix = fmt.Sprintf("%s-step%d", prefix, i+1)
		offered := rate * float64(step.Sessions*step.Clients)
		if step.Progress != nil {
			fmt.Fprintf(step.Progress, "step %d: %.1f msg/s per client, %.0f inputs/s offered\n", i+1, rate, offered)
		}
		generatorStart, _ := readProcess(os.Getpid())
		started := time.Now()
		latency, err := RunLatency(ctx, step)
		if err != nil {
			return nil, fmt.Errorf("step %d (%.1f msg/s per client): %w", i+1, rate, err)
		}
		generatorEnd, _ := readProcess(os.Getpid())
		s := SaturationStep{
			RatePerClient: rate, OfferedRate: offered, SendRate: latency.SendRate, DeliveryRate: latency.DeliveryRate,
			Latency: latency.Latency, Lost: latency.Missing + latency.Duplicates + latency.OutOfOrder,
			GeneratorCPUPercent: 100 * (generatorEnd.cpuTime - generatorStart.cpuTime).Seconds() / time.Since(started).Seconds(),
		}
		if server := latency.Server; server != nil {
			s.ServerCPUPercent, s.ServerRSSPeakKiB = server.CPUPercentCore, server.RSSPeakKiB
			if latency.Delivered > 0 {
				s.ServerCPUMicrosPerDelivery = 1e6 * server.CPUSeconds / float64(latency.Delivered)
			}
		}
		p99 := time.Duration(latency.Latency.P99Us) * time.Microsecond
		s.Passed = latency.OK && p99 <= config.P99Bound
		switch {
		case !latency.OK:
			s.Stop = fmt.Sprintf("messages lost, duplicated or reordered (%d)", s.Lost)
		case p99 > config.P99Bound:
			s.Stop = fmt.Sprintf("p99 %v > %v", p99, config.P99Bound)
		case latency.SendRate < generatorBoundFraction*offered:
			s.Stop = fmt.Sprintf("the generator sent %.0f of %.0f inputs/s offered: it is the bottleneck", latency.SendRate, offered)
			result.GeneratorBound = true
		}
		result.Steps = append(result.Steps, s)
		if s.Passed && !result.GeneratorBound {
			last := s
			result.Sustained = &last
		}
		if s.Stop != "" {
			break
		}
		rate *= config.Factor
	}
	result.OK = result.Sustained != nil
	return result, nil
}

// WriteTable writes the ramp as a table.
func (r *SaturationResult) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "saturation: %s, %d sessions × %d clients, bound p99 ≤ %.0f ms and no loss\n\n", r.URL, r.Sessions, r.Clients, r.P99Bound)
	table := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(table, "msg/s/client\toffered/s\tinputs/s\tdeliveries/s\tp50 ms\tp99 ms\tp99.9 ms\tlost\tserver CPU %\tµs/delivery\tgenerator CPU %\t")
	for _, s := range r.Steps {
		fmt.Fprintf(table, "%.1f\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%.0f\t%.2f\t%.0f\t\n", s.RatePerClient, s.OfferedRate, s.SendRate,
			s.DeliveryRate, ms(s.Latency.P50Us), ms(s.Latency.P99Us), ms(s.Latency.P999Us), s.Lost, s.ServerCPUPercent, s.ServerCPUMicrosPerDelivery, s.GeneratorCPUPercent)
	}
	if err := table.Flush(); err != nil {
		return err
	}
	if last := r.Steps[len(r.Steps)-1]; last.Stop != "" {
		fmt.Fprintf(w, "\nstopped: %s\n", last.Stop)
	}
	if r.Sustained != nil {
		fmt.Fprintf(w, "max sustained: %.0f inputs/s, %.0f deliveries/s (p99 %.2f ms)\n", r.Sustained.SendRate, r.Sustained.DeliveryRate, ms(r.Sustained.Latency.P99Us))
	} else {
		fmt.Fprintln(w, "no step held the bound")
	}
	if r.GeneratorBound {
		fmt.Fprintln(w, "note: the load generator was the bottleneck; the reflector's limit is higher than measured")
	}
	return nil
}

// WriteJSON writes the ramp as JSON.
func (r *SaturationResult) WriteJSON(w io.Writer) error {
	encoder := json.NewEncoder(w)
	encoder.SetIndent("", "  ")
	return encoder.Encode(r)
}

// Passed reports whether at least one step held the bound.
func (r *SaturationResult) Passed() bool { return r.OK }

func ms(us int64) float64 { return float64(us) / 1000 }
