package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/diskstore"
)

const checkUsage = `Usage: metronome check [--data-dir DIR] [--durable=true] [--repair] [--json]

Checks a data directory of metronome serve without changing it, and says what
the server will do with every session when it starts. Run it with the server
stopped: it takes the directory's lock, so while a server runs it fails.

What is checked:
  messages.log   the header, every frame's CRC-32C, that the last commit is
                 complete; an invalid frame followed by valid ones is damage,
                 never a torn write
  journal/*.log  the header and every entry's CRC-32C; which sessions each
                 file restores, complete commits, a torn tail, damage (synced
                 entries after an invalid one)
  record.json    present, valid JSON; then the reflector restores the session
                 from its record and log exactly as the server would
                 (timeline, sequence numbers without gaps, message times)
  quarantine/    damaged sessions and journals moved there earlier (listed)
  tmp/           what interrupted writes left (listed; removed at start)

One line per session: id, verdict, messages and seqs the server will load (in
parentheses for a session it quarantines: what the valid part of its log
holds), reason. Verdicts:
  intact       the server changes nothing
  torn         a torn write at the end of the log (a commit that never
               returned) will be cut off; nothing acknowledged is lost
  recoverable  the journal restores what the files miss after a crash
               (messages, the record, an empty or missing log)
  damaged      data is lost: the server moves the session's files to
               quarantine/ and starts it on a new timeline (its clients rejoin
               from scratch); or the reflector cannot restore it, and the
               server fails every connection to it (4003) until it is fixed

The rules depend on --durable, which must be what the server runs with: with
the journal (durable, on Linux) every log the journal does not cover was
synced, so any invalid byte in it is damage; without it a torn end is cut.

--repair then does explicitly what the server does when it starts: replays
the journal, moves damaged sessions and journal files to quarantine/, cuts
torn tails, empties tmp/; it prints what it did, and checks again.

Exit status: 0 nothing is damaged (torn and recoverable sessions are listed
but count as fine), 1 something is damaged or the server would not start,
2 usage error, or the directory cannot be read or is in use by a server.

Examples:
  metronome check --data-dir /var/lib/metronome
  metronome check --data-dir /var/lib/metronome --repair
  metronome check --data-dir /var/lib/metronome --json | jq '.check.sessions[] | select(.verdict != "intact")'

Flags:
`

// checkOutput is what --json prints: the check, and with --repair what
// the repair did and the check after it.
type checkOutput struct {
	Check  *diskstore.InspectReport `json:"check"`
	Repair *repairReport            `json:"repair,omitempty"`
	After  *diskstore.InspectReport `json:"after,omitempty"`
}

// repairReport is what Open and loading every session did.
type repairReport struct {
	Replayed      int                 `json:"replayed"`
	JournalDamage []string            `json:"journal_damage,omitempty"`
	Quarantined   []quarantineReport  `json:"quarantined,omitempty"`
	Failed        []sessionLoadFailed `json:"failed,omitempty"`
	Sessions      int                 `json:"sessions"`
}

type quarantineReport struct {
	Session string `json:"session"`
	Reason  string `json:"reason"`
	MovedTo string `json:"moved_to"`
}

type sessionLoadFailed struct {
	Session string `json:"session"`
	Error   string `json:"error"`
}

// checkCommand runs "metronome check ..." and returns the exit status.
func checkCommand(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("check", flag.ContinueOnError)
	flags.SetOutput(stderr)
	dataDir := flags.String("data-dir", env("METRONOME_DATA_DIR", "metronome-data"), "the data directory to check [METRONOME_DATA_DIR]")
	durable := flags.Bool("durable", envBool("METRONOME_DURABLE", true), "judge with the rules of a server run with this --durable [METRONOME_DURABLE]")
	repair := flags.Bool("repair", false, "then do what the server does when it starts: replay the journal, quarantine damaged sessions, cut torn tails")
	jsonOutput := flags.Bool("json", false, "print the report as JSON")
	if code, done := parseFlags(flags, checkUsage, args, stderr); done {
		return code
	}
	if *dataDir == "" {
		fmt.Fprintln(stderr, "metronome check: --data-dir is empty; name the data directory of metronome serve")
		return 2
	}
	options := diskstore.Options{Durable: *durable}
	output := checkOutput{}
	var err error
	if output.Check, err = inspect(*dataDir, options); err != nil {
		return checkFailed(stderr, err)
	}
	code := 0
	if output.Check.Damaged() {
		code = 1
	}
	if !*jsonOutput {
		printReport(stdout, output.Check)
	}
	if *repair {
		if output.Repair, err = repairDataDir(*dataDir, options); err != nil {
			return checkFailed(stderr, err)
		}
		if output.After, err = inspect(*dataDir, options); err != nil {
			return checkFailed(stderr, err)
		}
		if output.After.Damaged() || len(output.Repair.Failed) > 0 {
			code = 1
		}
		if !*jsonOutput {
			printRepair(stdout, output.Repair, output.After)
		}
	}
	if *jsonOutput {
		encoder := json.NewEncoder(stdout)
		encoder.SetIndent("", "  ")
		if err := encoder.Encode(output); err != nil {
			return checkFailed(stderr, err)
		}
	}
	return code
}

// checkFailed reports an error that keeps check from reading the
// directory, and returns exit status 2.
func checkFailed(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "metronome check:", err)
	if errors.Is(err, diskstore.ErrLocked) {
		fmt.Fprintln(stderr, "metronome check: stop the server first: check and --repair need the data directory to themselves")
	}
	return 2
}

// inspect checks the data directory and restores every session that the
// store can load with the reflector, as the server would.
func inspect(dataDir string, options diskstore.Options) (*diskstore.InspectReport, error) {
	return diskstore.InspectVerify(dataDir, options, restorable)
}

// restorable reports why the reflector cannot restore a stored session.
func restorable(sessionID string, stored store.Session) error {
	if stored.Record == nil {
		return fmt.Errorf("no record.json, and the journal holds no record, but %d messages: the reflector cannot restore the session", len(stored.Messages))
	}
	messages := make([]reflector.StoredMessage, len(stored.Messages))
	for i, message := range stored.Messages {
		messages[i] = reflector.StoredMessage{Seq: message.Seq, Data: message.Data}
	}
	if _, err := reflector.Restore(reflector.DefaultConfig(), sessionID, 0, stored.Record, messages); err != nil {
		return fmt.Errorf("the reflector cannot restore the session: %w", err)
	}
	return nil
}

// repairDataDir does what the server does when it starts: Open, then
// LoadSession of every session, then Close.
func repairDataDir(dataDir string, options diskstore.Options) (*repairReport, error) {
	s, err := diskstore.Open(dataDir, options)
	if err != nil {
		return nil, fmt.Errorf("repairing: %w", err)
	}
	recovery := s.Recovery()
	report := &repairReport{Replayed: recovery.Replayed, JournalDamage: recovery.JournalDamage}
	for _, corrupt := range recovery.Quarantined {
		report.Quarantined = append(report.Quarantined, quarantineReport{corrupt.Session, corrupt.Reason, corrupt.Quarantine})
	}
	ctx := context.Background()
	ids, err := s.Sessions(ctx)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("repairing: %w", err)
	}
	for _, id := range ids {
		_, err := s.LoadSession(ctx, id)
		var corrupt *diskstore.CorruptError
		switch {
		case errors.As(err, &corrupt):
			report.Quarantined = append(report.Quarantined, quarantineReport{corrupt.Session, corrupt.Reason, corrupt.Quarantine})
		case err != nil:
			report.Failed = append(report.Failed, sessionLoadFailed{id, err.Error()})
		default:
			report.Sessions++
		}
	}
	if err := s.Close(); err != nil {
		return nil, fmt.Errorf("repairing: %w", err)
	}
	return report, nil
}

// printReport prints the check: journal files, one line per session,
// what else is in the directory, and a summary.
func printReport(w io.Writer, report *diskstore.InspectReport) {
	rules := "not durable: a torn end of a log is cut off"
	if report.Journaled {
		rules = "durable with the journal: an invalid byte in a log the journal does not cover is damage"
	} else if report.Durable {
		rules = "durable without a journal: a torn end of a log is cut off"
	}
	fmt.Fprintf(w, "data dir %s (%s)\n", report.Directory, rules)
	if report.OpenError != "" {
		fmt.Fprintf(w, "THE SERVER WOULD NOT START: %s\n", report.OpenError)
	}
	for _, journal := range report.Journals {
		printJournal(w, journal)
	}
	if len(report.Sessions) > 0 {
		table := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(table, "SESSION\tVERDICT\tMESSAGES\tSEQS\tREASON")
		for _, session := range report.Sessions {
			messages, seqs := fmt.Sprint(session.Messages), seqText(session.Seqs)
			if session.Verdict == diskstore.VerdictDamaged && session.Log != nil && session.Messages == 0 {
				// What the quarantined log holds, for whoever restores it.
				messages, seqs = fmt.Sprintf("(%d)", session.Log.Messages), "("+seqText(session.Log.Seqs)+")"
			}
			fmt.Fprintf(table, "%s\t%s\t%s\t%s\t%s\n", session.ID, session.Verdict, messages, seqs, session.Reason)
		}
		table.Flush()
	}
	for _, ignored := range report.Ignored {
		fmt.Fprintf(w, "ignored by the server: %s\n", ignored)
	}
	if len(report.Quarantine) > 0 {
		fmt.Fprintf(w, "quarantine/ holds %d entries (damage found earlier): %s\n", len(report.Quarantine), strings.Join(report.Quarantine, ", "))
	}
	if len(report.Leftovers) > 0 {
		fmt.Fprintf(w, "left by interrupted writes, removed at start: %s\n", strings.Join(report.Leftovers, ", "))
	}
	fmt.Fprintln(w, summary(report))
}

func printJournal(w io.Writer, journal diskstore.JournalReport) {
	var sessions []string
	for _, session := range journal.Sessions {
		text := session.ID
		if session.FirstAppendedSeq != nil {
			text += fmt.Sprintf(" (from seq %d)", *session.FirstAppendedSeq)
		}
		sessions = append(sessions, text)
	}
	if len(sessions) == 0 {
		sessions = []string{"none"}
	}
	fmt.Fprintf(w, "journal %s: %d entries in %d complete commits, %d torn bytes at the end; sessions: %s\n",
		journal.Path, journal.Entries, journal.Commits, journal.TornTailBytes, strings.Join(sessions, ", "))
	if journal.Damage != "" {
		fmt.Fprintf(w, "  DAMAGED: %s (the server replays what it can read around it and moves the file to quarantine/)\n", journal.Damage)
	}
}

func seqText(seqs *diskstore.SeqRange) string {
	if seqs == nil {
		return "-"
	}
	return fmt.Sprintf("%d-%d", seqs.First, seqs.Last)
}

func summary(report *diskstore.InspectReport) string {
	damagedJournals := 0
	for _, journal := range report.Journals {
		if journal.Damage != "" {
			damagedJournals++
		}
	}
	text := fmt.Sprintf("%d sessions: %d intact, %d torn, %d recoverable, %d damaged; %d journal files (%d damaged)",
		len(report.Sessions), report.Count(diskstore.VerdictIntact), report.Count(diskstore.VerdictTorn),
		report.Count(diskstore.VerdictRecoverable), report.Count(diskstore.VerdictDamaged), len(report.Journals), damagedJournals)
	if report.Damaged() {
		return "DAMAGED: " + text
	}
	return "OK: " + text
}

// printRepair prints what the repair did and the check after it (its
// sessions only when they are not intact).
func printRepair(w io.Writer, repair *repairReport, after *diskstore.InspectReport) {
	fmt.Fprintf(w, "\nrepair: replayed %d journal entries; %d sessions load\n", repair.Replayed, repair.Sessions)
	for _, damage := range repair.JournalDamage {
		fmt.Fprintf(w, "repair: damaged journal: %s\n", damage)
	}
	for _, quarantined := range repair.Quarantined {
		fmt.Fprintf(w, "repair: session %s quarantined to %s: %s\n", quarantined.Session, quarantined.MovedTo, quarantined.Reason)
	}
	for _, failed := range repair.Failed {
		fmt.Fprintf(w, "repair: session %s does not load: %s\n", failed.Session, failed.Error)
	}
	for _, session := range after.Sessions {
		if session.Verdict != diskstore.VerdictIntact {
			fmt.Fprintf(w, "after the repair: session %s is %s: %s\n", session.ID, session.Verdict, session.Reason)
		}
	}
	fmt.Fprintln(w, "after the repair: "+summary(after))
}
