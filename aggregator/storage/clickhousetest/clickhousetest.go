package clickhousetest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

// ClusterName is the remote_servers cluster StartN configures on every server.
const ClusterName = "fleetprof_test"

// ErrNotInstalled is returned when no clickhouse-server binary is found.
var ErrNotInstalled = errors.New("clickhouse-server not installed (apt-get install clickhouse-server)")

// binaries are tried in order; Debian ships /usr/sbin/clickhouse-server.
var binaries = []string{"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server", "/usr/bin/clickhouse"}

// Binary returns the path of the server binary and the arguments that select
// the server mode, or ErrNotInstalled.
func Binary() (string, []string, error) {
	if p := os.Getenv("FLEETPROF_CLICKHOUSE_SERVER"); p != "" {
		return p, nil, nil
	}
	for _, p := range binaries {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			if filepath.Base(p) == "clickhouse" {
				return p, []string{"server"}, nil
			}
			return p, nil, nil
		}
	}
	return "", nil, ErrNotInstalled
}

// Server is one running clickhouse-server.
type Server struct {
	Addr string // 127.0.0.1:PORT, native protocol
	dir  string
	cmd  *exec.Cmd
	done chan error
}

// Options configures Launch.
type Options struct {
	// Cluster lists the native addresses of every shard (one replica each) of
	// the ClusterName cluster; empty means no remote_servers section.
	Cluster []string
	// Port is the native port to listen on; 0 picks a free one.
	Port int
}

// Start launches a server for the test and stops it in t.Cleanup. It skips the
// test when the binary is missing.
func Start(tb testing.TB) string {
	tb.Helper()
	return StartN(tb, 1)[0]
}

// StartN launches n servers that all know the n-shard cluster ClusterName and
// returns their native addresses.
func StartN(tb testing.TB, n int) []string {
	tb.Helper()
	if _, _, err := Binary(); err != nil {
		testenv.Skip(tb, testenv.MissingTool, "%v", err)
	}
	ports, err := FreePorts(n)
	if err != nil {
		tb.Fatal(err)
	}
	addrs := make([]string, n)
	for i, p := range ports {
		addrs[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	for i := range n {
		opts := Options{Port: ports[i]}
		if n > 1 {
			opts.Cluster = addrs
		}
		s, err := Launch(opts)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Stop() })
	}
	return addrs
}

// FreePorts returns n distinct TCP ports free on 127.0.0.1 right now.
func FreePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Launch starts a server and waits until it accepts connections. The caller
// must Stop it.
func Launch(opts Options) (*Server, error) {
	bin, args, err := Binary()
	if err != nil {
		return nil, err
	}
	if opts.Port == 0 {
		p, err := FreePorts(1)
		if err != nil {
			return nil, err
		}
		opts.Port = p[0]
	}
	dir, err := os.MkdirTemp("", "fleetprof-clickhouse-")
	if err != nil {
		return nil, fmt.Errorf("clickhouse test dir: %w", err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(opts.Port), dir: dir, done: make(chan error, 1)}
	if err := s.start(bin, args, opts); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) start(bin string, args []string, opts Options) error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return fmt.Errorf("clickhouse test dir: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.dir, "config.xml"), []byte(configXML(s.dir, opts)), 0o644); err != nil {
		return fmt.Errorf("write clickhouse config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		return fmt.Errorf("write clickhouse users: %w", err)
	}
	cmd := exec.Command(bin, append(args, "--config-file="+filepath.Join(s.dir, "config.xml"))...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if os.Geteuid() == 0 {
		// The server refuses to run as root.
		uid, gid, err := lookupUser("clickhouse")
		if err != nil {
			return err
		}
		if err := chownAll(s.dir, uid, gid); err != nil {
			return err
		}
		// The temp dir's parent must be traversable; /tmp is.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: gid}
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start clickhouse-server: %w", err)
	}
	s.cmd = cmd
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			return fmt.Errorf("clickhouse-server exited before listening (%w): %s%s", werr, out.String(), s.errorLog())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("clickhouse-server not listening on %s after 60s: %s", s.Addr, s.errorLog())
		}
	}
}

func (s *Server) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "error.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop terminates the server and removes its directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-s.done:
			s.done <- err
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			err := <-s.done
			s.done <- err
		}
		s.cmd = nil
	}
	os.RemoveAll(s.dir)
}

func lookupUser(name string) (uint32, uint32, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("clickhouse-server must not run as root and user %q is missing (apt-get install clickhouse-server creates it): %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("user %q: bad uid/gid %s/%s", name, u.Uid, u.Gid)
	}
	return uint32(uid), uint32(gid), nil
}

func chownAll(dir string, uid, gid uint32) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Chown(p, int(uid), int(gid)); err != nil {
			return fmt.Errorf("chown clickhouse test dir: %w", err)
		}
		return nil
	})
}

func configXML(dir string, opts Options) string {
	var remote string
	if len(opts.Cluster) > 0 {
		var b strings.Builder
		b.WriteString("<remote_servers><" + ClusterName + ">")
		for _, a := range opts.Cluster {
			host, port, _ := net.SplitHostPort(a)
			fmt.Fprintf(&b, "<shard><replica><host>%s</host><port>%s</port></replica></shard>", host, port)
		}
		b.WriteString("</" + ClusterName + "></remote_servers>")
		remote = b.String()
	}
	return fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/server.log</log><errorlog>%[1]s/error.log</errorlog><console>0</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>104857600</mark_cache_size>
  <uncompressed_cache_size>104857600</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  %[3]s
</yandex>
`, dir, opts.Port, remote)
}

const usersXML = `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
