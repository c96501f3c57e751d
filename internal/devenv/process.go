package devenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portcullis-io/portcullis/internal/procstat"
)

// ProcessOptions run the operator as a separate process, as in a cluster,
// so that a test can stop, kill, pause and restart it.
type ProcessOptions struct {
	// Binary is the portcullis binary (go build ./cmd/portcullis).
	Binary string
	// Args are further operator flags, such as --validating-timeout-seconds.
	Args []string
	// Kubeconfig, when set, is called once the control plane runs and
	// before the operator starts, and returns the kubeconfig the operator
	// runs with (its own ServiceAccount's, say); nil runs it as the admin.
	Kubeconfig func(ctx context.Context, e *Env) (string, error)
	// Replicas is how many operator processes run behind the webhook
	// front, sharing the leader lease; 0 means 1.
	Replicas int
}

// Process is one operator process. Its ports stay the same across
// restarts, and its output goes to LogPath.
type Process struct {
	// Name identifies it in LogPath and errors.
	Name string
	// WebhookAddr, ProbeAddr and MetricsAddr are where it serves.
	WebhookAddr, ProbeAddr, MetricsAddr string
	// LogPath collects its output, appended across restarts.
	LogPath string

	binary string
	args   []string
	env    []string
	front  *front

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// startProcesses starts the operator processes and waits until each is
// ready.
func (e *Env) startProcesses(ctx context.Context, o *ProcessOptions, stateDir string) error {
	kubeconfig := filepath.Join(stateDir, "operator.kubeconfig")
	if o.Kubeconfig != nil {
		k, err := o.Kubeconfig(ctx, e)
		if err != nil {
			return fmt.Errorf("the operator's kubeconfig: %w", err)
		}
		kubeconfig = k
	} else if err := e.ControlPlane.WriteAdminKubeconfig(kubeconfig); err != nil {
		return err
	}
	n := max(o.Replicas, 1)
	for i := range n {
		p, err := e.newProcess(o, kubeconfig, stateDir, i)
		if err != nil {
			return err
		}
		if err := p.Start(); err != nil {
			return err
		}
		e.Processes = append(e.Processes, p)
	}
	for _, p := range e.Processes {
		if err := p.WaitReady(ctx); err != nil {
			return err
		}
	}
	e.ProbeAddr, e.MetricsAddr = e.Processes[0].ProbeAddr, e.Processes[0].MetricsAddr
	return nil
}

// DelayWebhooks delays every request the API server sends to the
// webhooks by d (0: none), at the webhook front: a slow network or a
// slow operator, as the API server sees it.
func (e *Env) DelayWebhooks(d time.Duration) { e.front.setDelay(d) }

// newProcess prepares, but does not start, replica i.
func (e *Env) newProcess(o *ProcessOptions, kubeconfig, stateDir string, i int) (*Process, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	p := &Process{
		Name:        "operator-" + strconv.Itoa(i),
		WebhookAddr: "127.0.0.1:" + strconv.Itoa(ports[0]),
		ProbeAddr:   "127.0.0.1:" + strconv.Itoa(ports[1]),
		MetricsAddr: "127.0.0.1:" + strconv.Itoa(ports[2]),
		binary:      o.Binary,
		front:       e.front,
	}
	p.LogPath = filepath.Join(stateDir, p.Name+".log")
	p.args = append([]string{
		"--namespace=" + e.Namespace,
		"--webhook-host=127.0.0.1", "--webhook-port=" + strconv.Itoa(ports[0]),
		"--cert-dir=" + e.certDir, "--cert-host=" + strings.Join(e.hosts, ","), "--cert-secret=" + CertSecret,
		"--metrics-bind-address=" + p.MetricsAddr, "--health-probe-bind-address=" + p.ProbeAddr,
		"--leader-elect=true", "--authenticate-callers=true", "--authenticate-admission-callers=true",
		"--webhook-url=" + e.WebhookURL,
	}, e.runtimeConfigFlags()...)
	p.args = append(p.args, o.Args...)
	p.env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	return p, nil
}

func (e *Env) runtimeConfigFlags() []string {
	var out []string
	for gv, on := range e.rc {
		out = append(out, "--runtime-config="+gv+"="+strconv.FormatBool(on))
	}
	return out
}

// Start starts the process and routes the webhook front to it; it does
// not wait for readiness (see WaitReady).
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is running", p.Name)
	}
	out, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.binary, p.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, out, out
	// Its own process group: a signal to the test does not reach it, and
	// one to it does not reach the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	p.front.add(p.WebhookAddr)
	return nil
}

// Pid is the running process's id, 0 when it is not running.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop ends the process with SIGTERM, as the kubelet does, and waits for
// it as long as the Pod's terminationGracePeriodSeconds in
// config/manager/manager.yaml (StopGrace), then SIGKILLs it and reports
// that it did not stop in time; a paused process is resumed first.
func (p *Process) Stop() error { return p.end(syscall.SIGTERM, StopGrace) }

// StopGrace is the operator Pod's terminationGracePeriodSeconds.
const StopGrace = 10 * time.Second

// Kill ends the process with SIGKILL: a crash.
func (p *Process) Kill() error { return p.end(syscall.SIGKILL, 10*time.Second) }

func (p *Process) end(sig syscall.Signal, grace time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	// As a Service's endpoints do when a Pod terminates: no new
	// connections go to it.
	p.front.remove(p.WebhookAddr)
	_ = p.cmd.Process.Signal(sig)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	var err error
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		err = fmt.Errorf("%s did not stop within %v after %v", p.Name, grace, sig)
	}
	p.cmd, p.done = nil, nil
	return err
}

// Pause stops the process (SIGSTOP): it keeps its sockets, so callers
// connect and wait, as with a hung process.
func (p *Process) Pause() error { return p.signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Process) Resume() error { return p.signal(syscall.SIGCONT) }

func (p *Process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.Name)
	}
	return p.cmd.Process.Signal(sig)
}

// Running is whether the process has been started and not ended.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// WaitReady waits until its /readyz passes, and fails as soon as the
// process exits instead.
func (p *Process) WaitReady(ctx context.Context) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return fmt.Errorf("%s is not running (see %s)", p.Name, p.LogPath)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := waitHTTP(ctx, "http://"+p.ProbeAddr+"/readyz", ReadyTimeout)
	select {
	case <-done:
		return fmt.Errorf("%s exited before it was ready (see %s)", p.Name, p.LogPath)
	default:
	}
	if err != nil {
		return fmt.Errorf("%s: %w (see %s)", p.Name, err, p.LogPath)
	}
	return nil
}

// RSS is the process's resident set size in bytes.
func (p *Process) RSS() (uint64, error) {
	pid := p.Pid()
	if pid == 0 {
		return 0, errors.New(p.Name + " is not running")
	}
	return procstat.RSS(pid)
}

// CPUTime is the CPU time (user and system) the process has used.
func (p *Process) CPUTime() (time.Duration, error) {
	pid := p.Pid()
	if pid == 0 {
		return 0, errors.New(p.Name + " is not running")
	}
	return procstat.CPU(pid)
}
