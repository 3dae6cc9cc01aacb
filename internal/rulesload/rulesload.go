// Package rulesload builds the rules engine from the configuration (rule
// files and the rules shipped in the binary), observes it with Prometheus
// metrics, and reloads it when the files change or on request; a reload
// that fails keeps the running rules.
package rulesload

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
	"github.com/stepup-dev/stepup/rules"
)

//go:embed builtin/*.js
var builtinRules embed.FS

// builtinRule returns the source of a rule shipped in the binary.
func builtinRule(name string) ([]byte, error) {
	b, err := builtinRules.ReadFile("builtin/" + name + ".js")
	if err != nil {
		entries, _ := builtinRules.ReadDir("builtin")
		var names []string
		for _, e := range entries {
			names = append(names, strings.TrimSuffix(e.Name(), ".js"))
		}
		return nil, fmt.Errorf("no built-in rule %q (built-in rules: %s)", name, strings.Join(names, ", "))
	}
	return b, nil
}

// Metrics implements rules.Observer with Prometheus metrics. Rule
// names come from the configuration, so the label set is bounded.
type Metrics struct {
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	reloads  *prometheus.CounterVec
	loaded   prometheus.Gauge
	// queueWait is how long runs waited to start, by outcome (ok,
	// timeout, rejected); its children are made once.
	queueWait     *prometheus.HistogramVec
	queueWaitByOc map[string]prometheus.Observer

	// children caches each rule's metric children: ObserveRule runs for
	// every rule of every Check, and a label lookup hashes the values.
	mu       sync.RWMutex
	children map[string]*ruleChildren
}

// ruleChildren are one rule's metric children.
type ruleChildren struct {
	duration prometheus.Observer
	mu       sync.RWMutex
	runs     map[string]prometheus.Counter // by outcome
}

func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_rule_executions_total",
			Help: "Rule executions by rule and outcome (ok, error, timeout, exception).",
		}, []string{"rule", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stepup_rule_eval_duration_seconds",
			Help:    "Time one rule took.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}, []string{"rule"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_rules_reloads_total",
			Help: "Rule reloads by result (ok, error). On error the previous rules stay in force.",
		}, []string{"result"}),
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stepup_rules_last_reload_success",
			Help: "1 when the last rules reload succeeded, 0 when the running rules are older than the files.",
		}),
	}
	m.queueWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "stepup_rules_queue_wait_seconds",
		Help:    "Time a rules run waited for a place to run JavaScript and a runtime, by outcome (ok, timeout, rejected: the expected wait passed the deadline).",
		Buckets: []float64{.00001, .0001, .001, .005, .01, .025, .05, .1, .25, .5},
	}, []string{"outcome"})
	m.queueWaitByOc = map[string]prometheus.Observer{}
	for _, oc := range []string{"ok", "timeout", "rejected"} {
		m.queueWaitByOc[oc] = m.queueWait.WithLabelValues(oc)
	}
	m.children = map[string]*ruleChildren{}
	reg.MustRegister(m.runs, m.duration, m.reloads, m.loaded, m.queueWait)
	m.loaded.Set(1)
	return m
}

// ObserveRule implements rules.Observer.
func (m *Metrics) ObserveRule(rule, outcome string, d time.Duration) {
	c := m.rule(rule)
	c.duration.Observe(d.Seconds())
	c.mu.RLock()
	runs, ok := c.runs[outcome]
	c.mu.RUnlock()
	if !ok {
		runs = m.runs.WithLabelValues(rule, outcome)
		c.mu.Lock()
		c.runs[outcome] = runs
		c.mu.Unlock()
	}
	runs.Inc()
}

var _ rules.QueueObserver = (*Metrics)(nil)

// ObserveQueueWait implements rules.QueueObserver.
func (m *Metrics) ObserveQueueWait(outcome string, d time.Duration) {
	if o, ok := m.queueWaitByOc[outcome]; ok {
		o.Observe(d.Seconds())
	}
}

// rule returns the cached children of a rule. Rule names are bounded by
// the configuration; a reload that renames rules leaves a few stale
// entries, as the metric vectors themselves do.
func (m *Metrics) rule(name string) *ruleChildren {
	m.mu.RLock()
	c, ok := m.children[name]
	m.mu.RUnlock()
	if ok {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok = m.children[name]; !ok {
		c = &ruleChildren{duration: m.duration.WithLabelValues(name), runs: map[string]prometheus.Counter{}}
		m.children[name] = c
	}
	return c
}

// Sources loads the configured rule files (and built-ins).
func Sources(cfg *config.Config) ([]rules.Source, error) {
	var out []rules.Source
	for i, ref := range cfg.Rules.List {
		var src rules.Source
		var err error
		if ref.Builtin != "" {
			var code []byte
			code, err = builtinRule(ref.Builtin)
			src = rules.Source{Name: ref.Builtin, Path: "builtin:" + ref.Builtin, Code: code}
		} else {
			src, err = rules.LoadFile(cfg.Resolve(ref.File))
		}
		if err != nil {
			return nil, fmt.Errorf("rules.list[%d]: %w", i, err)
		}
		if ref.Name != "" {
			src.Name = ref.Name
		}
		src.Enabled = ref.On()
		src.Kind = ref.Kind
		out = append(out, src)
	}
	return out, nil
}

// Configuration resolves the `configuration` values.
func Configuration(cfg *config.Config) (map[string]string, error) {
	out := make(map[string]string, len(cfg.Rules.Configuration))
	for k, s := range cfg.Rules.Configuration {
		v, err := s.Resolve(cfg)
		if err != nil {
			return nil, fmt.Errorf("rules.configuration.%s: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

// NewEngine compiles the configured rules.
func NewEngine(cfg *config.Config, log *slog.Logger, obs rules.Observer) (*rules.Engine, error) {
	srcs, err := Sources(cfg)
	if err != nil {
		return nil, err
	}
	conf, err := Configuration(cfg)
	if err != nil {
		return nil, err
	}
	e, err := rules.New(rules.Options{
		Rules:            srcs,
		Configuration:    conf,
		RuleTimeout:      cfg.Rules.RuleTimeout.D(),
		PipelineTimeout:  cfg.Rules.PipelineTimeout.D(),
		MaxRuntimeMemory: int64(cfg.Rules.MaxRuntimeMemory),
		MaxWaitingRuns:   cfg.Rules.MaxWaitingRuns,
		Logger:           log,
		Observer:         obs,
	})
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	// Build the runtimes now, not on the first requests.
	if err := e.Warm(runtime.GOMAXPROCS(0)); err != nil {
		e.Close()
		return nil, fmt.Errorf("rules: %w", err)
	}
	return e, nil
}

// Reloader recompiles rules when their files change or on request and
// swaps them into the policy; on error the running rules stay.
type Reloader struct {
	policy  *extauthz.RulesPolicy
	metrics *Metrics
	log     *slog.Logger
	mu      sync.Mutex
}

// NewReloader reloads into policy, counting reloads in m.
func NewReloader(policy *extauthz.RulesPolicy, m *Metrics, log *slog.Logger) *Reloader {
	return &Reloader{policy: policy, metrics: m, log: log}
}

// Reload compiles cfg's rules and swaps them in. The old engine is closed
// after every check that may still run on it has finished.
func (r *Reloader) Reload(cfg *config.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, err := NewEngine(cfg, r.log, r.metrics)
	if err != nil {
		r.metrics.reloads.WithLabelValues("error").Inc()
		r.metrics.loaded.Set(0)
		r.log.Error("rules reload failed: the previous rules stay in force", "error", err.Error())
		return err
	}
	old := r.policy.Swap(e)
	r.metrics.reloads.WithLabelValues("ok").Inc()
	r.metrics.loaded.Set(1)
	r.log.Info("rules reloaded", "rules", e.Rules())
	if old != nil {
		grace := cfg.Rules.PipelineTimeout.D()*2 + time.Second
		time.AfterFunc(grace, old.Close)
	}
	return nil
}

// Watch reloads when a rule file changes (debounced), until ctx ends.
// load re-reads the configuration (it may have changed too).
func (r *Reloader) Watch(ctx context.Context, cfg *config.Config, load func() (*config.Config, error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	files := map[string]bool{}
	dirs := map[string]bool{}
	for _, ref := range cfg.Rules.List {
		if ref.File == "" {
			continue
		}
		p, err := filepath.Abs(cfg.Resolve(ref.File))
		if err != nil {
			continue
		}
		files[p] = true
		dirs[filepath.Dir(p)] = true
	}
	if cfg.Path() != "" {
		if p, err := filepath.Abs(cfg.Path()); err == nil {
			files[p] = true
			dirs[filepath.Dir(p)] = true
		}
	}
	// Directories, not files: editors replace files by renaming, which
	// would end a watch on the file itself.
	var watched []string
	for d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			return err
		}
		watched = append(watched, d)
	}
	sort.Strings(watched)
	r.log.Debug("watching rule files", "dirs", watched)
	go func() {
		defer w.Close()
		var timer *time.Timer
		fire := make(chan struct{}, 1)
		for {
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				p, _ := filepath.Abs(ev.Name)
				if !files[p] || ev.Op == fsnotify.Chmod {
					continue
				}
				if timer != nil {
					timer.Stop()
				}
				timer = time.AfterFunc(200*time.Millisecond, func() {
					select {
					case fire <- struct{}{}:
					default:
					}
				})
			case <-fire:
				c, err := load()
				if err != nil {
					r.metrics.reloads.WithLabelValues("error").Inc()
					r.metrics.loaded.Set(0)
					r.log.Error("rules reload failed: the configuration does not load; the previous rules stay in force", "error", err.Error())
					continue
				}
				_ = r.Reload(c)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				r.log.Warn("rule file watch error", "error", err.Error())
			}
		}
	}()
	return nil
}
