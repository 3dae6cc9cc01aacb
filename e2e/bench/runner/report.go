package runner

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// Files written into Options.OutDir.
const (
	JSONFile     = "results.json"
	MarkdownFile = "results.md"
	SVGFile      = "results.svg"
)

// row is one scenario's figures as text cells.
func (s *ScenarioResult) cells() []string {
	id := fmt.Sprint(s.ID)
	switch {
	case s.Skipped != "":
		return []string{id, s.Name, "skipped: " + s.Skipped}
	case s.Error != "":
		return []string{id, s.Name, "FAILED: " + firstLine(s.Error)}
	case len(s.Rounds) == 0:
		return []string{id, s.Name, "no rounds"}
	}
	b, st, r := s.Baseline, s.Stepup, s.Ratio
	return []string{
		id, s.Name, s.Expect.String(),
		fmt.Sprintf("%.0f", b.RPS), fmt.Sprintf("%.0f", st.RPS), fmt.Sprintf("%.2f", r.Throughput),
		fmt.Sprintf("%.0f / %.0f", b.P50us, st.P50us),
		fmt.Sprintf("%.0f / %.0f", b.P99us, st.P99us),
		fmt.Sprintf("%.1f / %.1f", b.CPUPerCheckUs, st.CPUPerCheckUs), fmt.Sprintf("%.2f", r.CPUPerCheck),
		fmt.Sprintf("%.0f / %.0f", b.PeakRSSMB, st.PeakRSSMB),
		fmt.Sprintf("%.2fs", st.StartupSeconds),
		fmt.Sprintf("%s / %s", pct(b.ErrorRate), pct(st.ErrorRate)),
		s.verdicts(),
	}
}

var headers = []string{"#", "scenario", "stepup decision", "base req/s", "stepup req/s", "ratio",
	"p50 µs b/s", "p99 µs b/s", "CPU µs/check b/s", "ratio", "RSS MB b/s", "startup", "failed b/s", "targets"}

func pct(f float64) string {
	if f == 0 {
		return "0"
	}
	if f < 0.001 {
		return "<0.1%"
	}
	return fmt.Sprintf("%.1f%%", f*100)
}

// verdicts renders the targets: "✓ req/s ≥ 0.75× (0.81)".
func (s *ScenarioResult) verdicts() string {
	parts := make([]string, 0, len(s.Results))
	for _, t := range s.Results {
		mark := "·"
		if t.Met != nil {
			mark = "✗"
			if *t.Met {
				mark = "✓"
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", mark, t.Target, formatValue(t)))
	}
	return strings.Join(parts, "; ")
}

func formatValue(t TargetResult) string {
	switch t.Metric {
	case "startup_seconds":
		return fmt.Sprintf("%.2fs", t.Value)
	case "rss_mb":
		return fmt.Sprintf("%.0f MB", t.Value)
	}
	return fmt.Sprintf("%.2f", t.Value)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// WriteTable prints the results as an aligned text table.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "stepup vs allow-all baseline: %d round(s) × %s per side (warm-up %s), %d workers on %d connection(s), %d CPUs, load average %s → %s%s\n",
		r.Rounds, r.Duration, r.Warmup, r.Concurrency, r.Conns, r.NumCPU, r.LoadAvgBefore, r.LoadAvgAfter, r.notes())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for i := range r.Scenarios {
		c := r.Scenarios[i].cells()
		// Every line has every cell, or tabwriter realigns after it.
		for len(c) < len(headers) {
			c = append(c, "")
		}
		fmt.Fprintln(tw, strings.Join(c, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "b/s = baseline / stepup; ratios are stepup/baseline, medians of the rounds' ratios; failed = share of calls that missed the %s deadline or failed closed (store/deadline fault, estimated from the sampled responses); ✓ met, ✗ missed, · not judged (smoke)\n", r.Timeout); err != nil {
		return err
	}
	if r.Saturation != nil {
		var b strings.Builder
		r.Saturation.writeTable(&b, false)
		b.WriteString(saturationNote(r.Timeout))
		_, err := io.WriteString(w, b.String())
		return err
	}
	return nil
}

// notes are the run's caveats: smoke mode, stepup's extra environment.
func (r *Report) notes() string {
	var n string
	if len(r.StepupEnv) > 0 {
		n += " — stepup environment: " + strings.Join(r.StepupEnv, " ")
	}
	if r.Smoke {
		n += " — SMOKE: decisions checked, speed not judged"
	}
	return n
}

// saturationNote explains the past-saturation table.
func saturationNote(timeout string) string {
	return "Past saturation: closed-loop workers over the same connections, every response decoded; shares are of all calls in the window (medians of the rounds), \"decided in time\" = the expected decision within the " + timeout + " deadline, \"overloaded\" = stepup's admission control answering 503 at once, DEADLINE EXPIRIES = calls with no answer before the deadline (summed over the rounds; must be 0), decided late = answers that beat grpc-go's deadline but reached the client's goroutine after it (client-side scheduling on a loaded machine; summed). Latencies are client-side: they include the wait in the transport and the run queue before admission control sees a Check. A turned-away worker retries at once.\n"
}

// WriteMarkdown writes the results as Markdown.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# stepup benchmark results\n\n")
	fmt.Fprintf(&b, "Run %s (%s) on %s/%s, %d CPUs, %s: %d round(s) × %s per side per scenario (warm-up %s), %d closed-loop workers on %d HTTP/2 connection(s). Load average %s before, %s after.%s\n\n",
		r.Started.Format("2006-01-02 15:04 MST"), r.Elapsed, r.GOOS, r.GOARCH, r.NumCPU, r.GoVersion, r.Rounds, r.Duration, r.Warmup,
		r.Concurrency, r.Conns, r.LoadAvgBefore, r.LoadAvgAfter, r.notes())
	b.WriteString("| " + strings.Join(headers, " | ") + " |\n")
	b.WriteString(strings.Repeat("|---", len(headers)) + "|\n")
	for i := range r.Scenarios {
		c := r.Scenarios[i].cells()
		for len(c) < len(headers) {
			c = append(c, "")
		}
		for j := range c {
			c[j] = strings.ReplaceAll(c[j], "|", "\\|")
		}
		b.WriteString("| " + strings.Join(c, " | ") + " |\n")
	}
	fmt.Fprintf(&b, "\nb/s = baseline / stepup. \"failed\" is the share of calls (worst round) that missed the %s per-call deadline, which are in no other figure, plus the share of sampled answers that failed closed (503 store_unavailable and the like), which count as answered. Ratios are stepup/baseline, the median of the rounds' ratios. CPU is", r.Timeout)
	b.WriteString(" the server process's user+system time (/proc/PID/stat) in the measured window divided by the Checks answered; RSS is VmHWM at the end of the scenario; startup is exec → gRPC health SERVING (median of the starts).\n\n")
	b.WriteString("## Scenarios\n\n")
	for _, s := range r.Scenarios {
		fmt.Fprintf(&b, "%d. **%s**: %s. Expected: %s. Load average at start: %s.\n", s.ID, s.Name, s.Description, s.Expect, s.LoadAvg)
	}
	if r.Saturation != nil {
		r.Saturation.writeTable(&b, true)
		b.WriteString("\n" + saturationNote(r.Timeout))
	}
	b.WriteString("\n## Rounds\n\n| # | round | order | baseline req/s | stepup req/s | baseline CPU µs/check | stepup CPU µs/check | baseline p99 µs | stepup p99 µs | errors b/s |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Scenarios {
		for i, rd := range s.Rounds {
			order := "baseline first"
			if rd.StepupFirst {
				order = "stepup first"
			}
			fmt.Fprintf(&b, "| %d | %d | %s | %.0f | %.0f | %.1f | %.1f | %.0f | %.0f | %d / %d |\n", s.ID, i+1, order,
				rd.Baseline.RPS, rd.Stepup.RPS, rd.Baseline.CPUPerCheckUs, rd.Stepup.CPUPerCheckUs,
				rd.Baseline.P99us, rd.Stepup.P99us, rd.Baseline.Errors, rd.Stepup.Errors)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteSVG draws, per scenario, stepup's throughput and CPU per Check as
// a ratio of the baseline's, with the scenario's targets marked.
func (r *Report) WriteSVG(w io.Writer) error {
	type bar struct {
		label  string
		value  float64
		target float64 // 0: none
		color  string
	}
	type group struct {
		label string
		bars  []bar
	}
	var groups []group
	// The axis runs to 3× at most: a bar beyond it is drawn to the top,
	// hatched, with its value written on it.
	const capV = 3.0
	maxV := 1.6
	for _, s := range r.Scenarios {
		if len(s.Rounds) == 0 {
			continue
		}
		g := group{label: fmt.Sprintf("%d %s", s.ID, s.Name)}
		var thrT, cpuT float64
		for _, t := range s.Targets {
			switch t.Metric {
			case "throughput_ratio":
				thrT = t.Limit
			case "cpu_ratio":
				cpuT = t.Limit
			}
		}
		g.bars = append(g.bars, bar{"req/s", s.Ratio.Throughput, thrT, "#3b78c2"}, bar{"CPU/check", s.Ratio.CPUPerCheck, cpuT, "#d9822b"})
		for _, b := range g.bars {
			maxV = max(maxV, min(b.value, capV))
		}
		groups = append(groups, g)
	}
	const (
		left, top, plotH    = 60, 50, 260
		barW, gap, groupGap = 28, 6, 34
	)
	width := left + 20 + len(groups)*(2*barW+gap+groupGap)
	if width < 640 {
		width = 640
	}
	height := top + plotH + 70
	y := func(v float64) float64 { return top + plotH - v/maxV*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := fmt.Sprintf("stepup / allow-all baseline (%d rounds × %s%s)", r.Rounds, r.Duration, map[bool]string{true: ", smoke", false: ""}[r.Smoke])
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="36" fill="#555">blue: throughput ratio (higher is better) · orange: CPU per Check ratio (lower is better) · black ticks: targets · hatched: beyond the axis</text>`+"\n", left)
	step := 0.25
	if maxV > 2 {
		step = 0.5
	}
	b.WriteString(`<defs><pattern id="clip" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="white" fill-opacity="0.5"/></pattern></defs>` + "\n")
	for v := 0.0; v <= maxV+1e-9; v += step {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/>`+"\n", left, width-10, y(v), y(v), map[bool]string{true: "#999", false: "#eee"}[v == 1])
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.2f×</text>`+"\n", left-6, y(v)+4, v)
	}
	x := left + 14
	for _, g := range groups {
		for i, br := range g.bars {
			bx := x + i*(barW+gap)
			v := min(br.value, maxV)
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s %s: %.2f×</title></rect>`+"\n",
				bx, y(v), barW, y(0)-y(v), br.color, html.EscapeString(g.label), br.label, br.value)
			if br.value > maxV {
				fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="url(#clip)"/>`+"\n", bx, y(v), barW, y(0)-y(v))
			}
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="middle" font-size="10">%.2f</text>`+"\n", bx+barW/2, y(v)-3, br.value)
			if br.target > 0 {
				fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black" stroke-width="2"/>`+"\n", bx-3, bx+barW+3, y(br.target), y(br.target))
			}
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x+barW+gap/2, top+plotH+18, html.EscapeString(g.label))
		x += 2*barW + gap + groupGap
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeResults writes the JSON, Markdown and SVG files into dir.
func writeResults(dir string, r *Report) error {
	return writeReport(dir, r, JSONFile, MarkdownFile, SVGFile, r.WriteMarkdown, r.WriteSVG)
}

// writeReport writes r as JSON, and its Markdown and SVG renderings, into
// dir under the names given.
func writeReport(dir string, r any, jsonFile, mdFile, svgFile string, md, svg func(io.Writer) error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results directory: %w", err)
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, jsonFile), append(j, '\n'), 0o644); err != nil {
		return err
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{{mdFile, md}, {svgFile, svg}} {
		var b strings.Builder
		if err := f.write(&b); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
