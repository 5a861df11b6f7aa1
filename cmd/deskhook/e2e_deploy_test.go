package main

// What the README's Install section and deploy/ promise: a build stamped
// with its version, an image that is built and runs, a systemd unit that
// systemd accepts, a Kubernetes manifest with the fields the README relies
// on.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/testenv"
)

// repoRoot is the repository's top directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// tool finds a program the test needs; a missing one is a failure that
// says how to get it.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: scripts/test-deps.sh (make test-deps) installs it", name)
	}
	return p
}

// runTool runs name with args in dir (the repository when ""), within
// timeout, and returns its output; it must exit 0.
func runTool(t testing.TB, timeout time.Duration, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if dir == "" {
		cmd.Dir = repoRoot(t)
	}
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out.String(), 8<<10))
	}
	return out.String()
}

// TestMakeBuildStampsVersion: `make build`, and the README's go build
// line, stamp `git describe --tags --always --dirty`.
func TestMakeBuildStampsVersion(t *testing.T) {
	t.Parallel()
	git, mk := tool(t, "git"), tool(t, "make")
	want := strings.TrimSpace(runTool(t, time.Minute, "", nil, git, "describe", "--tags", "--always", "--dirty"))
	bin := filepath.Join(t.TempDir(), "deskhook")
	runTool(t, 10*time.Minute, "", nil, mk, "--no-print-directory", "build", "BIN="+bin)
	if got := runTool(t, time.Minute, "", nil, bin, "version"); got != "deskhook "+want+"\n" {
		t.Errorf("make build: version says %q, want %q", got, "deskhook "+want)
	}

	// The README's go build line, as written (but for where it puts the
	// binary).
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^CGO_ENABLED=0 go build .*-o bin/deskhook \./cmd/deskhook$`).Find(readme)
	if line == nil {
		t.Fatal("README has no `CGO_ENABLED=0 go build ... -o bin/deskhook ./cmd/deskhook` line")
	}
	plain := filepath.Join(t.TempDir(), "deskhook")
	runTool(t, 10*time.Minute, "", nil, tool(t, "sh"), "-c", strings.Replace(string(line), "-o bin/deskhook", "-o "+plain, 1))
	if got := runTool(t, time.Minute, "", nil, plain, "version"); got != "deskhook "+want+"\n" {
		t.Errorf("README's go build: version says %q, want %q", got, "deskhook "+want)
	}
}

// imageConfig is the part of an OCI image config the test reads.
type imageConfig struct {
	User       string
	Entrypoint []string
	Cmd        []string
	Labels     map[string]string
}

// TestContainerImage builds the image with `make image` (buildah, vfs
// storage, chroot isolation: no daemon, no registry) and runs it: the
// image's own entrypoint and command, as a non-root user, with the config
// and a store volume mounted as the Kubernetes manifest mounts them. The
// daemon in it streams from the test's PostgreSQL and delivers, its probe
// port answers, and `deskhook status` in the container reaches it.
func TestContainerImage(t *testing.T) {
	t.Parallel()
	buildah, mk := tool(t, "buildah"), tool(t, "make")
	storage := t.TempDir()
	flags := []string{"--root", filepath.Join(storage, "root"), "--runroot", filepath.Join(storage, "run"), "--storage-driver", "vfs"}
	version := fmt.Sprintf("e2e-image-%d", os.Getpid())
	image := "localhost/deskhook-e2e:" + version
	runTool(t, 10*time.Minute, "", nil, mk, "--no-print-directory", "image", "VERSION="+version, "IMAGE="+image,
		"IMAGE_CONTEXT="+filepath.Join(storage, "context"), "BUILDAH_FLAGS="+strings.Join(flags, " "))
	bah := func(args ...string) string {
		t.Helper()
		return runTool(t, 2*time.Minute, storage, nil, buildah, append(clone(flags), args...)...)
	}
	var inspected struct {
		OCIv1 struct {
			Config imageConfig `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(bah("inspect", "--type", "image", image)), &inspected); err != nil {
		t.Fatalf("image config: %v", err)
	}
	cfg := inspected.OCIv1.Config
	if cfg.User != "65532:65532" || cfg.Labels["org.opencontainers.image.version"] != version ||
		len(cfg.Entrypoint) != 1 || strings.Join(cfg.Cmd, " ") != "run -c /etc/deskhook/deskhook.yaml" {
		t.Fatalf("image config: %+v", cfg)
	}
	ctr := strings.TrimSpace(bah("from", image))
	t.Cleanup(func() { _ = exec.Command(buildah, append(clone(flags), "rm", ctr)...).Run() })
	inCtr := func(args ...string) []string {
		return append(append(clone(flags), "run", "--isolation", "chroot"), append(args, ctr, "--")...)
	}
	if got := bah(append(inCtr(), append(clone(cfg.Entrypoint), "version")...)...); !strings.Contains(got, "deskhook "+version+"\n") {
		t.Errorf("deskhook version in the image: %q", got)
	}

	e := newE2E(t)
	e.setup()
	probe := freePort(t)
	cfgDir, storeDir := filepath.Join(storage, "etc"), filepath.Join(storage, "store")
	for _, d := range []string{cfgDir, storeDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(storeDir, 0o777); err != nil { // the image's user writes there
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`source: {dsn: %q, slot: %s}
store: {path: /var/lib/deskhook/deskhook.db}
admin: {listen: %q, probe_listen: %q}
endpoints: [{name: rcv, url: %q, events: [ticket_created, ticket_reply]}]
shutdown_timeout: 5s
`, e.db.DSN, e.slot, e.admin, probe, e.rcv.URL+"/hooks")
	if err := os.WriteFile(filepath.Join(cfgDir, "deskhook.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := []string{"-v", cfgDir + ":/etc/deskhook:ro", "-v", storeDir + ":/var/lib/deskhook"}
	run := exec.Command(buildah, append(inCtr(mounts...), append(clone(cfg.Entrypoint), cfg.Cmd...)...)...)
	var out testenv.Output
	run.Stdout, run.Stderr = &out, &out
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	stop := func() {
		// buildah's chroot runtime and deskhook under it share its group.
		_ = syscall.Kill(-run.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("deskhook in the container:\n%s", tail(out.String(), 8<<10))
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, _, err := httpGet("http://" + probe + "/readyz")
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("deskhook in the container exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's probe port never said ready (last: %d %v)", code, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	load := e.load(context.Background(), testenv.LoadConfig{Tickets: 2, Replies: 1, Seed: 21})
	e.waitDelivered(load.TotalEvents(), 60*time.Second)
	for _, r := range e.rcv.Requests() {
		if ua := r.Header.Get("User-Agent"); ua != "deskhook/"+version {
			t.Errorf("User-Agent %q, want deskhook/%s", ua, version)
			break
		}
	}
	// As the manifest's comment says: `kubectl exec deploy/deskhook --
	// deskhook status`, no path, no -c.
	status := bah(append(inCtr(mounts...), "deskhook", "status")...)
	if !strings.Contains(status, "running, ready") || !strings.Contains(status, "rcv") {
		t.Errorf("deskhook status in the container:\n%s", status)
	}
	if st, err := os.Stat(filepath.Join(storeDir, "deskhook.db")); err != nil || st.Sys().(*syscall.Stat_t).Uid != 65532 {
		t.Errorf("the store in the volume: %v %v; want it written by uid 65532", st, err)
	}
}

func clone(s []string) []string { return append([]string(nil), s...) }

// TestSystemdUnit: systemd-analyze verify accepts the unit (with
// ExecStart pointing at the test's binary: verify wants it to exist), and
// the unit runs the daemon without a check before it.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	analyze := tool(t, "systemd-analyze")
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/systemd/deskhook.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "deskhook.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(raw, []byte("/usr/local/bin/deskhook"), []byte(deskhookBinary(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	fields := unitFields(string(raw))
	want := map[string]string{
		"Service.ExecStart":       "/usr/local/bin/deskhook run -c /etc/deskhook/deskhook.yaml",
		"Service.User":            "deskhook",
		"Service.EnvironmentFile": "-/etc/deskhook/env",
		"Service.StateDirectory":  "deskhook",
		"Service.ExecReload":      "/bin/kill -HUP $MAINPID",
		"Install.WantedBy":        "multi-user.target",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("%s = %q, want %q", k, fields[k], v)
		}
	}
	// A check before the start would keep auto_setup from ever running.
	if v, ok := fields["Service.ExecStartPre"]; ok {
		t.Errorf("ExecStartPre=%s: the daemon must be free to start (and set up) by itself", v)
	}
	stop, err := time.ParseDuration(fields["Service.TimeoutStopSec"] + "s")
	if err != nil || stop <= daemon.DefaultShutdownTimeout {
		t.Errorf("TimeoutStopSec=%s: must exceed shutdown_timeout's default %s", fields["Service.TimeoutStopSec"], daemon.DefaultShutdownTimeout)
	}
	// The commands the unit's comment tells an operator to run exist.
	for _, c := range []string{"deskhook status -c /etc/deskhook/deskhook.yaml", "deskhook check -c /etc/deskhook/deskhook.yaml"} {
		if !strings.Contains(string(raw), c) {
			t.Errorf("the unit's comment lacks %q", c)
		}
	}
}

// unitFields reads a unit file's Section.Key=Value lines.
func unitFields(text string) map[string]string {
	fields := map[string]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			if k, v, ok := strings.Cut(line, "="); ok {
				fields[section+"."+k] = v
			}
		}
	}
	return fields
}

// TestKubernetesManifest reads deploy/kubernetes/deskhook.yaml without
// kubectl and checks what the README says of it: a Deployment of its own,
// one replica, Recreate, a liveness probe and no readiness probe, only the
// probe port exposed (the operator API on loopback), a memory limit above
// the measured peak, the image's user and command, and a config that
// deskhook accepts with the Secret's variables.
func TestKubernetesManifest(t *testing.T) { // not parallel: t.Setenv
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "deploy/kubernetes/deskhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		docs[str(doc["kind"])] = doc
	}
	for _, k := range []string{"ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment"} {
		if docs[k] == nil {
			t.Fatalf("the manifest has no %s", k)
		}
	}
	dep := docs["Deployment"]
	if n := get(dep, "spec", "replicas"); n != 1 {
		t.Errorf("replicas %v, want 1", n)
	}
	if s := get(dep, "spec", "strategy", "type"); s != "Recreate" {
		t.Errorf("strategy %v, want Recreate", s)
	}
	pod := get(dep, "spec", "template", "spec").(map[string]any)
	ctrs := pod["containers"].([]any)
	if len(ctrs) != 1 {
		t.Fatalf("%d containers: deskhook runs in a Pod of its own", len(ctrs))
	}
	c := ctrs[0].(map[string]any)
	if _, ok := c["readinessProbe"]; ok {
		t.Errorf("the deskhook container has a readiness probe")
	}
	ports := c["ports"].([]any)
	if len(ports) != 1 {
		t.Fatalf("ports %v: only the probe port is exposed", ports)
	}
	portName, containerPort := str(get(ports[0], "name")), get(ports[0], "containerPort")
	if p := get(c, "livenessProbe", "httpGet", "path"); p != "/healthz" || get(c, "livenessProbe", "httpGet", "port") != portName {
		t.Errorf("livenessProbe: %v", c["livenessProbe"])
	}
	if a := get(dep, "spec", "template", "metadata", "annotations", "prometheus.io/port"); a != strconv.Itoa(containerPort.(int)) {
		t.Errorf("prometheus.io/port %v, want the probe port %v", a, containerPort)
	}
	mem := quantity(t, str(get(c, "resources", "limits", "memory")))
	if mem < 256e6 {
		t.Errorf("memory limit %d bytes: below the peak RSS README states (256 MB)", mem)
	}
	for _, env := range asList(c["env"]) {
		if str(get(env, "name")) == "GOMEMLIMIT" {
			t.Errorf("the container sets GOMEMLIMIT, which overrides memory_limit (derived from the config's memory bounds)")
		}
	}
	// The image's user and command (deploy/container/Containerfile).
	cf, err := os.ReadFile(filepath.Join(root, "deploy/container/Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^USER 65532:65532$`).Match(cf) || get(pod, "securityContext", "runAsUser") != 65532 ||
		get(pod, "securityContext", "runAsNonRoot") != true {
		t.Errorf("the Pod's user is not the image's (65532, non-root): %v", pod["securityContext"])
	}
	var args []string
	for _, a := range c["args"].([]any) {
		args = append(args, str(a))
	}
	cmdJSON, _ := json.Marshal(args)
	if !strings.Contains(string(cf), "CMD "+strings.ReplaceAll(string(cmdJSON), ",", ", ")) {
		t.Errorf("args %s differ from the image's CMD", cmdJSON)
	}

	// The config: valid with the Secret's variables, API on loopback, probes
	// on the exposed port, store on the volume, config where args say.
	for k, v := range get(docs["Secret"], "stringData").(map[string]any) {
		t.Setenv(k, str(v))
	}
	cfg, err := daemon.ParseConfig([]byte(str(get(docs["ConfigMap"], "data", "deskhook.yaml"))))
	if err != nil {
		t.Fatalf("the ConfigMap's deskhook.yaml: %v", err)
	}
	// The container's limit leaves room above the soft memory limit the
	// config sets (its bounds' sum): the binary, the store's mapped pages
	// and its page cache, an event larger than the bounds in flight.
	if budget := cfg.MemoryBudget(); cfg.MemoryLimit != daemon.MemoryLimitAuto || mem < budget+128<<20 {
		t.Errorf("memory limit %d bytes with memory_limit %s (the bounds: %d bytes): want memory_limit auto and 128 MiB above it",
			mem, cfg.MemoryLimit, budget)
	}
	if h := strings.Split(cfg.Admin.Listen, ":")[0]; h != "127.0.0.1" {
		t.Errorf("admin.listen %s: the operator API must stay on loopback", cfg.Admin.Listen)
	}
	if !strings.HasSuffix(cfg.Admin.ProbeListen, ":"+strconv.Itoa(containerPort.(int))) {
		t.Errorf("admin.probe_listen %s is not the exposed port %v", cfg.Admin.ProbeListen, containerPort)
	}
	mounts := map[string]string{}
	for _, m := range c["volumeMounts"].([]any) {
		mounts[str(get(m, "name"))] = str(get(m, "mountPath"))
	}
	vols := map[string]any{}
	for _, v := range pod["volumes"].([]any) {
		vols[str(get(v, "name"))] = v
	}
	for name, mp := range mounts {
		v := vols[name]
		switch {
		case get(v, "persistentVolumeClaim", "claimName") == get(docs["PersistentVolumeClaim"], "metadata", "name"):
			if filepath.Dir(cfg.Store.Path) != mp {
				t.Errorf("store.path %s is not on the store volume (%s)", cfg.Store.Path, mp)
			}
		case get(v, "configMap", "name") == get(docs["ConfigMap"], "metadata", "name"):
			if mp+"/deskhook.yaml" != args[len(args)-1] {
				t.Errorf("the config is mounted at %s, args read %s", mp, args[len(args)-1])
			}
		default:
			t.Errorf("volume mount %s: no such volume in the manifest", name)
		}
	}
}

// asList is v as a YAML list (nil when it is not one).
func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// get walks nested YAML maps (nil when a key is missing).
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// quantity reads a Kubernetes memory quantity (512Mi, 1Gi, 1G).
func quantity(t *testing.T, q string) int64 {
	t.Helper()
	units := map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 1e3, "M": 1e6, "G": 1e9, "": 1}
	m := regexp.MustCompile(`^(\d+)([KMG]i?)?$`).FindStringSubmatch(q)
	if m == nil {
		t.Fatalf("memory quantity %q", q)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n * units[m[2]]
}
