package labels

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// In-cluster service account files.
const (
	ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	DefaultResync     = 30 * time.Second
	// minRelist spaces out re-lists triggered by unknown containers.
	minRelist = 2 * time.Second
)

// InCluster reports whether the process runs in a Kubernetes pod (the API
// server's address is in the environment).
func InCluster() bool {
	return os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBERNETES_SERVICE_PORT") != ""
}

// KubeConfig configures the pod lister.
type KubeConfig struct {
	// APIServer is the API server's base URL. Default: from
	// KUBERNETES_SERVICE_HOST/PORT (in-cluster).
	APIServer string
	// TokenFile holds the bearer token, re-read on every list because
	// projected tokens rotate. Default: the service account's.
	TokenFile string
	// CAFile verifies the API server. Default: the service account's.
	CAFile string
	// Node lists only pods scheduled on this node. Required.
	Node string
	// Resync is the period of full re-lists (default 30 s).
	Resync time.Duration
	// Client overrides the HTTP client (tests); CAFile is then ignored.
	Client *http.Client
}

func (c KubeConfig) withDefaults() KubeConfig {
	if c.APIServer == "" {
		if h, p := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"); h != "" && p != "" {
			c.APIServer = "https://" + net.JoinHostPort(h, p)
		}
	}
	if c.TokenFile == "" {
		c.TokenFile = ServiceAccountDir + "/token"
	}
	if c.CAFile == "" {
		c.CAFile = ServiceAccountDir + "/ca.crt"
	}
	if c.Resync == 0 {
		c.Resync = DefaultResync
	}
	return c
}

// Validate reports the first invalid field (after defaults).
func (c KubeConfig) Validate() error {
	switch {
	case c.APIServer == "":
		return errors.New("kubernetes api server unknown: set it or run in a pod (KUBERNETES_SERVICE_HOST)")
	case c.Node == "":
		return errors.New("kubernetes node name is empty (set NODE_NAME from spec.nodeName)")
	case c.Resync <= 0:
		return fmt.Errorf("kubernetes resync %v must be positive", c.Resync)
	}
	if _, err := url.Parse(c.APIServer); err != nil {
		return fmt.Errorf("kubernetes api server: %w", err)
	}
	return nil
}

// Pod is what the agent keeps of a pod.
type Pod struct {
	Namespace, Name, UID string
	Labels               map[string]string
}

// Container is one container of a pod.
type Container struct {
	Pod  *Pod
	Name string
}

// Kube keeps a map of the containers running on this node, from periodic
// lists of the node's pods. Lookups are safe for concurrent use.
type Kube struct {
	cfg    KubeConfig
	client *http.Client
	miss   chan struct{}

	mu          sync.RWMutex
	byContainer map[string]Container
	byPodUID    map[string]*Pod
	missed      map[string]bool // ids looked up and not found since the last periodic list
	lastErr     error
}

// NewKube returns a lister; call Refresh or Run to fill it.
func NewKube(cfg KubeConfig) (*Kube, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid kubernetes config: %w", err)
	}
	client := cfg.Client
	if client == nil {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read kubernetes ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kubernetes ca %s: no PEM certificates", cfg.CAFile)
		}
		client = &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		}
	}
	return &Kube{
		cfg: cfg, client: client, miss: make(chan struct{}, 1),
		byContainer: map[string]Container{}, byPodUID: map[string]*Pod{}, missed: map[string]bool{},
	}, nil
}

// Refresh lists the pods on this node and replaces the container map.
func (k *Kube) Refresh(ctx context.Context) error {
	err := k.refresh(ctx)
	k.mu.Lock()
	k.lastErr = err
	k.mu.Unlock()
	return err
}

func (k *Kube) refresh(ctx context.Context) error {
	token, err := os.ReadFile(k.cfg.TokenFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read kubernetes token: %w", err)
	}
	q := url.Values{"fieldSelector": {"spec.nodeName=" + k.cfg.Node}}
	u := strings.TrimSuffix(k.cfg.APIServer, "/") + "/api/v1/pods?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if t := strings.TrimSpace(string(token)); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("list pods on node %s: %s: %s", k.cfg.Node, resp.Status, strings.TrimSpace(string(body)))
	}
	var list corev1.PodList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return fmt.Errorf("decode pod list: %w", err)
	}
	byContainer := map[string]Container{}
	byPodUID := map[string]*Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		pod := &Pod{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), Labels: maps.Clone(p.Labels)}
		byPodUID[pod.UID] = pod
		for _, statuses := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
			for _, cs := range statuses {
				if id := runtimeID(cs.ContainerID); id != "" {
					byContainer[id] = Container{Pod: pod, Name: cs.Name}
				}
			}
		}
	}
	k.mu.Lock()
	k.byContainer, k.byPodUID = byContainer, byPodUID
	k.mu.Unlock()
	return nil
}

// runtimeID strips the runtime scheme: "containerd://<id>" → "<id>".
func runtimeID(s string) string {
	if _, id, ok := strings.Cut(s, "://"); ok {
		return id
	}
	return s
}

// Container returns the pod container with the runtime id, if listed. A miss
// asks Run for an early re-list (a pod started since the last list).
func (k *Kube) Container(id string) (Container, bool) {
	k.mu.RLock()
	c, ok := k.byContainer[id]
	known := k.missed[id]
	k.mu.RUnlock()
	if !ok && !known {
		// Only the first miss of an id triggers a re-list: containers that
		// are not pods (docker run on the node) would otherwise re-list forever.
		k.mu.Lock()
		k.missed[id] = true
		k.mu.Unlock()
		select {
		case k.miss <- struct{}{}:
		default:
		}
	}
	return c, ok
}

// PodByUID returns a listed pod.
func (k *Kube) PodByUID(uid string) (*Pod, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	p, ok := k.byPodUID[uid]
	return p, ok
}

// Err returns the error of the latest list (nil after a success).
func (k *Kube) Err() error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.lastErr
}

// Run re-lists every Resync, and sooner (at most every 2 s) after a lookup
// missed, until ctx is done. List errors keep the previous map; Err tells.
func (k *Kube) Run(ctx context.Context) error {
	_ = k.Refresh(ctx)
	last := time.Now()
	ticker := time.NewTicker(k.cfg.Resync)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			k.mu.Lock()
			clear(k.missed)
			k.mu.Unlock()
		case <-k.miss:
			if wait := minRelist - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
		}
		_ = k.Refresh(ctx)
		last = time.Now()
	}
}
