package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// checkMethod is the full gRPC method Envoy calls.
const checkMethod = "/envoy.service.auth.v3.Authorization/Check"

// rawCodec sends pre-marshalled bytes and, for responses, keeps the bytes
// only when asked to: the load generator spends no CPU on protobuf in the
// loop, so that what it costs is the same, and small, for both servers.
// Its name is "proto" so that the content-type is application/grpc+proto
// and the server decodes with its usual codec.
type rawCodec struct{}

// rawReq is a pre-marshalled request.
type rawReq []byte

// rawResp receives a response; keep says whether to copy the bytes.
type rawResp struct {
	keep bool
	b    []byte
}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(rawReq)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(r)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*rawResp)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	if r.keep {
		r.b = data.Materialize()
	}
	return nil
}

func (rawCodec) Name() string { return "proto" }

// loadOptions shape one measured run.
type loadOptions struct {
	// concurrency workers call Check in a closed loop over conns HTTP/2
	// connections.
	concurrency, conns int
	warmup, duration   time.Duration
	// timeout is each call's deadline (sent as grpc-timeout, as Envoy
	// sends its ext_authz timeout).
	timeout time.Duration
	// sampleEvery: every n-th response of a worker is decoded and checked.
	sampleEvery int
	// classify decodes every response and sorts it into the outcomes of
	// [Outcomes] (the past-saturation runs): answered with a decision,
	// turned away as overloaded, another fail-closed answer, no answer.
	classify bool
}

// Measurement is one side of one round.
type Measurement struct {
	// Requests completed successfully in the measured window.
	Requests int64   `json:"requests"`
	Seconds  float64 `json:"seconds"`
	// RPS is Requests/Seconds.
	RPS float64 `json:"rps"`
	// Latencies in microseconds, client side (from the call to the
	// response), in the measured window.
	P50us float64 `json:"p50_us"`
	P90us float64 `json:"p90_us"`
	P99us float64 `json:"p99_us"`
	MaxUs float64 `json:"max_us"`
	// ServerCPUSeconds is the server's user+system CPU time in the window;
	// CPUPerCheckUs divides it by Requests.
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	CPUPerCheckUs    float64 `json:"cpu_per_check_us"`
	// ClientCPUSeconds is the harness's own CPU time in the window (the
	// load generator competes for the same cores).
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	// Errors are failed calls (deadline exceeded, mostly): they are not in
	// Requests or the latencies. Checked counts the sampled responses that
	// were decoded and verified; Faults are those that failed closed
	// because stepup was overloaded (a session store or deadline fault,
	// see [faultReasons]) and Mismatches those that were another decision.
	Errors     int64 `json:"errors"`
	Checked    int64 `json:"checked"`
	Faults     int64 `json:"faults"`
	Mismatches int64 `json:"mismatches"`
	// DeadlineExpiries are the failed calls whose deadline expired before
	// an answer came (gRPC DeadlineExceeded); they are also in Errors.
	DeadlineExpiries int64 `json:"deadline_expiries"`
	// FirstError and FirstMismatch describe the first failed call and the
	// first wrong decision, if any.
	FirstError    string `json:"first_error,omitempty"`
	FirstMismatch string `json:"first_mismatch,omitempty"`
	// Outcomes sorts every call of the window (classifying runs only).
	Outcomes *Outcomes `json:"outcomes,omitempty"`
}

// Outcomes sorts every call of a measured window by what came back, for
// the past-saturation runs, where every response is decoded. Requests
// counts all answers; Decided those with the expected decision, all of
// them within the deadline (a later one is a DeadlineExpiry).
type Outcomes struct {
	Calls int64 `json:"calls"`
	// Decided: answered with the scenario's decision within the deadline
	// as the client measured it.
	Decided int64 `json:"decided"`
	// DecidedLate: answered with the decision, but the client saw it
	// after the deadline (the answer beat grpc-go's deadline, the
	// client's own goroutine was late to take it: a loaded machine).
	DecidedLate int64 `json:"decided_late"`
	// Overloaded: denied at once by admission control (503, reason
	// "overloaded").
	Overloaded int64 `json:"overloaded"`
	// OtherFaults: other fail-closed answers (store_unavailable,
	// deadline, rule_timeout).
	OtherFaults int64 `json:"other_faults"`
	// DeadlineExpiries: no answer before the call's deadline.
	DeadlineExpiries int64 `json:"deadline_expiries"`
	// OtherErrors: other failed calls (connection errors).
	OtherErrors int64 `json:"other_errors"`
	// Latencies of the decided (in time or late) and of the overloaded
	// answers, µs.
	DecidedP50us    float64 `json:"decided_p50_us"`
	DecidedP99us    float64 `json:"decided_p99_us"`
	DecidedMaxUs    float64 `json:"decided_max_us"`
	OverloadedP50us float64 `json:"overloaded_p50_us"`
	OverloadedP99us float64 `json:"overloaded_p99_us"`
}

// share returns n as a share of the calls.
func (o *Outcomes) share(n int64) float64 {
	if o == nil || o.Calls == 0 {
		return 0
	}
	return float64(n) / float64(o.Calls)
}

// ErrWrongDecision means a server answered something other than the
// scenario's expected decision.
var ErrWrongDecision = errors.New("wrong decision")

// drive runs the closed-loop load against addr: warm-up, then the
// measured window, and returns the measurement. Worker w sends reqs[w],
// reqs[w+1], … in turn (most scenarios have one request; the curves of
// many users rotate through a pool). pid is the server's process, for its
// CPU time. verify checks a decoded response.
func drive(ctx context.Context, addr string, reqs [][]byte, pid int, o loadOptions, verify func(*authv3.CheckResponse) error) (Measurement, error) {
	conns := make([]*grpc.ClientConn, o.conns)
	for i := range conns {
		c, err := grpc.NewClient("passthrough:///"+addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			return Measurement{}, err
		}
		defer c.Close()
		c.Connect()
		conns[i] = c
	}

	const (
		phaseWarm = iota
		phaseMeasure
		phaseStop
	)
	var (
		phase      atomic.Int32
		errCount   atomic.Int64
		expired    atomic.Int64
		checked    atomic.Int64
		faults     atomic.Int64
		mismatches atomic.Int64
		firstErr   atomic.Pointer[string]
		firstWrong atomic.Pointer[string]
	)
	note := func(p *atomic.Pointer[string], err error) {
		s := err.Error()
		p.CompareAndSwap(nil, &s)
	}
	hists := make([]*histogram, o.concurrency)
	counts := make([]int64, o.concurrency)
	// Classifying runs: per worker, the outcomes and the latencies of
	// decided and overloaded answers.
	outs := make([]Outcomes, o.concurrency)
	decidedH := make([]*histogram, o.concurrency)
	overH := make([]*histogram, o.concurrency)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < o.concurrency; w++ {
		h := &histogram{}
		hists[w] = h
		if o.classify {
			decidedH[w], overH[w] = &histogram{}, &histogram{}
		}
		conn := conns[w%len(conns)]
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			out := &outs[w]
			var resp rawResp
			n := 0
			for runCtx.Err() == nil {
				p := phase.Load()
				if p == phaseStop {
					return
				}
				payload := rawReq(reqs[(w+n)%len(reqs)])
				n++
				resp.keep = o.classify || o.sampleEvery > 0 && n%o.sampleEvery == 0
				cctx, ccancel := context.WithTimeout(runCtx, o.timeout)
				t0 := time.Now()
				err := conn.Invoke(cctx, checkMethod, payload, &resp)
				d := time.Since(t0)
				ccancel()
				if err != nil {
					if runCtx.Err() != nil || phase.Load() == phaseStop {
						return
					}
					if p == phaseMeasure {
						errCount.Add(1)
						note(&firstErr, err)
						deadline := status.Code(err) == codes.DeadlineExceeded
						if deadline {
							expired.Add(1)
						}
						if o.classify {
							out.Calls++
							if deadline {
								out.DeadlineExpiries++
							} else {
								out.OtherErrors++
							}
						}
					}
					continue
				}
				measured := p == phaseMeasure && phase.Load() == phaseMeasure
				if resp.keep {
					var cr authv3.CheckResponse
					err := proto.Unmarshal(resp.b, &cr)
					if err == nil {
						err = verify(&cr)
					}
					checked.Add(1)
					overloaded := false
					switch {
					case err == nil:
					case isOverloaded(&cr):
						overloaded = true
						faults.Add(1)
						note(&firstErr, errors.New("failed closed: overloaded"))
					case isFault(&cr):
						faults.Add(1)
						note(&firstErr, fmt.Errorf("failed closed: %s", cr.GetStatus().GetMessage()))
					default:
						mismatches.Add(1)
						note(&firstWrong, err)
					}
					if o.classify && measured {
						out.Calls++
						switch {
						case err == nil && d > o.timeout:
							out.DecidedLate++
							decidedH[w].record(d)
						case err == nil:
							out.Decided++
							decidedH[w].record(d)
						case overloaded:
							out.Overloaded++
							overH[w].record(d)
						case isFault(&cr):
							out.OtherFaults++
						}
					}
				}
				if measured {
					h.record(d)
					counts[w]++
				}
			}
		}(w)
	}

	stopAll := func() {
		phase.Store(phaseStop)
		cancel()
		wg.Wait()
	}
	select {
	case <-time.After(o.warmup):
	case <-ctx.Done():
		stopAll()
		return Measurement{}, ctx.Err()
	}
	cpu0, err := cpuSeconds(pid)
	procOK := err == nil
	self0, _ := cpuSeconds(os.Getpid())
	t0 := time.Now()
	phase.Store(phaseMeasure)
	select {
	case <-time.After(o.duration):
	case <-ctx.Done():
		stopAll()
		return Measurement{}, ctx.Err()
	}
	phase.Store(phaseStop)
	elapsed := time.Since(t0)
	cpu1, err := cpuSeconds(pid)
	procOK = procOK && err == nil
	self1, _ := cpuSeconds(os.Getpid())
	stopAll()

	var all, decided, over histogram
	var total int64
	var oc Outcomes
	for w := range hists {
		all.merge(hists[w])
		total += counts[w]
		if o.classify {
			decided.merge(decidedH[w])
			over.merge(overH[w])
			ow := outs[w]
			oc.Calls += ow.Calls
			oc.Decided += ow.Decided
			oc.DecidedLate += ow.DecidedLate
			oc.Overloaded += ow.Overloaded
			oc.OtherFaults += ow.OtherFaults
			oc.DeadlineExpiries += ow.DeadlineExpiries
			oc.OtherErrors += ow.OtherErrors
		}
	}
	m := Measurement{
		Requests:   total,
		Seconds:    elapsed.Seconds(),
		P50us:      us(all.quantile(0.50)),
		P90us:      us(all.quantile(0.90)),
		P99us:      us(all.quantile(0.99)),
		MaxUs:      us(time.Duration(all.max)),
		Errors:     errCount.Load(),
		Checked:    checked.Load(),
		Faults:     faults.Load(),
		Mismatches: mismatches.Load(),

		DeadlineExpiries: expired.Load(),
	}
	if o.classify {
		oc.DecidedP50us, oc.DecidedP99us, oc.DecidedMaxUs = us(decided.quantile(0.50)), us(decided.quantile(0.99)), us(time.Duration(decided.max))
		oc.OverloadedP50us, oc.OverloadedP99us = us(over.quantile(0.50)), us(over.quantile(0.99))
		m.Outcomes = &oc
	}
	if p := firstErr.Load(); p != nil {
		m.FirstError = *p
	}
	if p := firstWrong.Load(); p != nil {
		m.FirstMismatch = *p
	}
	m.RPS = float64(total) / m.Seconds
	if procOK {
		m.ServerCPUSeconds = cpu1 - cpu0
		if total > 0 {
			m.CPUPerCheckUs = m.ServerCPUSeconds / float64(total) * 1e6
		}
		m.ClientCPUSeconds = self1 - self0
	}
	switch {
	case m.Mismatches > 0:
		return m, fmt.Errorf("%w in %d of %d sampled responses; first: %s", ErrWrongDecision, m.Mismatches, m.Checked, strings.TrimPrefix(m.FirstMismatch, ErrWrongDecision.Error()+": "))
	case total == 0 && m.Errors == 0:
		return m, errors.New("no call completed in the measured window")
	}
	// Failed calls (a missed deadline, mostly) are a result, not a fault
	// of the harness, even when every call failed: they are counted and
	// reported next to the figures.
	return m, nil
}

// faultReasons are the reasons of stepup's fail-closed denials that mean
// it could not decide in time (docs/envoy.md#decisions-and-reasons), not that it decided
// otherwise: under overload they are failures to count, not wrong
// decisions.
var faultReasons = map[string]bool{"store_unavailable": true, "deadline": true, "rule_timeout": true}

// isOverloaded reports stepup's admission-control answer: 503 at once,
// reason "overloaded" (extauthz/admission.go).
func isOverloaded(resp *authv3.CheckResponse) bool {
	return resp.GetDeniedResponse() != nil && resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue() == "overloaded"
}

func isFault(resp *authv3.CheckResponse) bool {
	return resp.GetDeniedResponse() != nil && faultReasons[resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
