package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// report prints several -json results side by side, with the ratio of the
// first run to the second per phase and kind, and fails (exit 1) when a
// run has errors or falls below a floor.
func report(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scimload report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var minOps, minRatio floors
	fs.Var(&minOps, "min-ops", "PHASE=N,...: fail when a run's phase is slower than N requests per second")
	fs.Var(&minRatio, "min-ratio", "PHASE=R,...: fail when the first run's ops/s divided by the second's is below R")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: scimload report [-min-ops PHASE=N,...] [-min-ratio PHASE=R,...] NAME=RESULT.json [NAME=RESULT.json ...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var names []string
	var runs []Result
	for _, arg := range fs.Args() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok || name == "" || path == "" {
			fmt.Fprintf(stderr, "scimload report: argument %q is not NAME=RESULT.json\n", arg)
			return 2
		}
		r, err := readResult(path)
		if err != nil {
			fmt.Fprintf(stderr, "scimload report: %v\n", err)
			return 1
		}
		names = append(names, name)
		runs = append(runs, r)
	}
	if len(minRatio) > 0 && len(runs) < 2 {
		fmt.Fprintln(stderr, "scimload report: -min-ratio needs two runs")
		return 2
	}
	if err := writeComparison(stdout, names, runs); err != nil {
		fmt.Fprintf(stderr, "scimload report: %v\n", err)
		return 1
	}
	problems := checkFloors(names, runs, minOps, minRatio)
	for _, p := range problems {
		fmt.Fprintf(stdout, "FAIL: %s\n", p)
	}
	if len(problems) > 0 {
		return 1
	}
	return 0
}

func readResult(path string) (Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Result{}, fmt.Errorf("read result: %w", err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("result file %s is not scimload -json output: %w", path, err)
	}
	if len(r.Phases) == 0 {
		return Result{}, fmt.Errorf("result file %s holds no phase", path)
	}
	return r, nil
}

// floors is a PHASE=NUMBER list flag.
type floors map[string]float64

func (f *floors) String() string {
	if f == nil {
		return ""
	}
	var parts []string
	for k, v := range *f {
		parts = append(parts, k+"="+strconv.FormatFloat(v, 'g', -1, 64))
	}
	return strings.Join(parts, ",")
}

func (f *floors) Set(s string) error {
	if *f == nil {
		*f = floors{}
	}
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.ParseFloat(v, 64)
		if !ok || k == "" || err != nil || n < 0 {
			return fmt.Errorf("%q is not PHASE=NUMBER", part)
		}
		(*f)[k] = n
	}
	return nil
}

// checkFloors lists, one sentence each, every run with failed requests,
// every phase below its -min-ops floor, and every phase whose ratio of the
// first run to the second is below its -min-ratio floor.
func checkFloors(names []string, runs []Result, minOps, minRatio floors) []string {
	var out []string
	for i, r := range runs {
		for _, p := range r.Phases {
			if p.ErrorCount > 0 {
				out = append(out, fmt.Sprintf("%s: phase %s had %d failed requests (%s)", names[i], p.Name, p.ErrorCount, errorText(p.Errors)))
			}
		}
		for phase, floor := range minOps {
			p := findPhase(r, phase)
			switch {
			case p == nil:
				out = append(out, fmt.Sprintf("%s: phase %s did not run", names[i], phase))
			case p.OpsPerSec < floor:
				out = append(out, fmt.Sprintf("%s: phase %s ran %.1f requests/s, below the floor of %g", names[i], phase, p.OpsPerSec, floor))
			}
		}
	}
	for phase, floor := range minRatio {
		a, b := findPhase(runs[0], phase), findPhase(runs[1], phase)
		if a == nil || b == nil || b.OpsPerSec == 0 {
			out = append(out, fmt.Sprintf("phase %s: no ratio %s/%s (the phase is missing or did nothing)", phase, names[0], names[1]))
			continue
		}
		if ratio := a.OpsPerSec / b.OpsPerSec; ratio < floor {
			out = append(out, fmt.Sprintf("phase %s: %s/%s throughput ratio %.3f is below the floor of %g", phase, names[0], names[1], ratio, floor))
		}
	}
	return out
}

// writeComparison prints ops/s and p99 of each run per phase and kind, and
// the ratio of the first run's ops/s to the second's.
func writeComparison(w io.Writer, names []string, runs []Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-26s", "phase/kind")
	for _, n := range names {
		fmt.Fprintf(&b, " %14s %12s", n+" ops/s", n+" p99ms")
	}
	if len(runs) >= 2 {
		fmt.Fprintf(&b, " %8s", "ratio")
	}
	b.WriteString("\n")
	row := func(label string, get func(Result) *Summary) {
		fmt.Fprintf(&b, "%-26s", label)
		for _, r := range runs {
			if s := get(r); s != nil {
				fmt.Fprintf(&b, " %14.1f %12.3f", s.OpsPerSec, s.P99ms)
			} else {
				fmt.Fprintf(&b, " %14s %12s", "-", "-")
			}
		}
		if len(runs) >= 2 {
			a, c := get(runs[0]), get(runs[1])
			if a != nil && c != nil && c.OpsPerSec > 0 {
				fmt.Fprintf(&b, " %8.3f", a.OpsPerSec/c.OpsPerSec)
			} else {
				fmt.Fprintf(&b, " %8s", "-")
			}
		}
		b.WriteString("\n")
	}
	for _, phase := range phaseNames(runs) {
		row(phase, func(r Result) *Summary { return findPhase(r, phase) })
		for _, kind := range kindNames(runs, phase) {
			row("  "+kind, func(r Result) *Summary {
				if p := findPhase(r, phase); p != nil {
					return p.kindByName(kind)
				}
				return nil
			})
		}
	}
	for i, r := range runs {
		for _, p := range r.Phases {
			if p.RSSKiB > 0 {
				fmt.Fprintf(&b, "%s rss after %s: %.1f MiB (anonymous %.1f MiB)\n", names[i], p.Name, float64(p.RSSKiB)/1024, float64(p.RSSAnonKiB)/1024)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
