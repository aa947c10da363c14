package smoke

// The real node (kubelet, containerd, runc, the CNI bridge) and the
// metrics API (metrics-server): a pod of the busybox image built by the
// testbed runs there, serves HTTP to this machine, is Ready through its
// probe, writes a log that is read back, answers an exec with its output
// and exit code, has no route off its subnet, and is measured.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

const (
	realNodeName = "real-node"
	// Built by scripts/k8s-testbed.sh build from /bin/busybox and imported
	// into the node's containerd: never pulled.
	busyboxImage = "localhost/drycc-testbed/busybox:1"
	// The real node's taint: only pods that tolerate it run there, so
	// every other pod of the tests still lands on kwok's node.
	realNodeTaint = "drycc.cc/real-node"
)

func TestRealNodeRunsAPod(t *testing.T) {
	if os.Getenv("DRYCC_K8S_REAL_NODE") == "0" {
		t.Skip("DRYCC_K8S_REAL_NODE=0: the testbed was started without its real node")
	}
	ctx := context.Background()
	cs, config := clientAndConfig(t)

	node, err := cs.CoreV1().Nodes().Get(ctx, realNodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("node %s: %v", realNodeName, err)
	}
	if !nodeReady(node) {
		t.Fatalf("node %s is not Ready: %+v", realNodeName, node.Status.Conditions)
	}
	t.Logf("node %s: kubelet %s, runtime %s, kernel %s", node.Name, node.Status.NodeInfo.KubeletVersion,
		node.Status.NodeInfo.ContainerRuntimeVersion, node.Status.NodeInfo.KernelVersion)

	ns := newNamespace(t, ctx, cs)
	_, err = cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "smoke", "type": "web"}},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"kubernetes.io/hostname": realNodeName},
			Tolerations:  []corev1.Toleration{{Key: realNodeTaint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers: []corev1.Container{{
				Name:            "web",
				Image:           busyboxImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"sh", "-c", "echo hello from the real node; mkdir -p /www && echo smoke >/www/index.html && exec httpd -f -p 8080 -h /www"},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
			}},
			TerminationGracePeriodSeconds: ptr(int64(2)),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	var pod *corev1.Pod
	poll(t, ctx, 90*time.Second, "pod web Running and Ready on "+realNodeName, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		pod = p
		if p.Spec.NodeName != realNodeName {
			return fmt.Errorf("on node %q", p.Spec.NodeName)
		}
		if p.Status.Phase != corev1.PodRunning || !podReady(p) {
			return fmt.Errorf("phase %s, ready %v, containers %+v", p.Status.Phase, podReady(p), p.Status.ContainerStatuses)
		}
		return nil
	})
	t.Logf("pod web: IP %s", pod.Status.PodIP)

	// The pod's address is on the testbed's bridge, in the node's network.
	podIP := net.ParseIP(pod.Status.PodIP)
	if podIP == nil || !sameSubnet24(podIP, net.ParseIP(node.Status.Addresses[0].Address)) {
		t.Fatalf("pod IP %q is not in the /24 of the node's address %v", pod.Status.PodIP, node.Status.Addresses)
	}
	httpClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := httpClient.Get("http://" + net.JoinHostPort(pod.Status.PodIP, "8080") + "/")
	if err != nil {
		t.Fatalf("GET the pod's httpd: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "smoke" {
		t.Fatalf("GET the pod's httpd: %d %q", resp.StatusCode, body)
	}

	// Its log, through the API server and the kubelet.
	poll(t, ctx, 30*time.Second, "the pod's log", func(ctx context.Context) error {
		raw, err := cs.CoreV1().Pods(ns).GetLogs("web", &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			return err
		}
		if !strings.Contains(string(raw), "hello from the real node") {
			return fmt.Errorf("log is %q", raw)
		}
		return nil
	})

	// An exec: its output, and its exit code.
	stdout, stderr, code := execIn(t, ctx, cs, config, ns, "web", []string{"sh", "-c", "echo out; echo err >&2; cat /proc/net/route; exit 3"})
	if code != 3 {
		t.Fatalf("exec exit code %d, want 3 (stdout %q, stderr %q)", code, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "out\n") || strings.TrimSpace(stderr) != "err" {
		t.Fatalf("exec stdout %q, stderr %q", stdout, stderr)
	}
	// No default route in the pod: nothing it sends leaves its subnet.
	for _, line := range strings.Split(stdout, "\n")[2:] {
		if fields := strings.Fields(line); len(fields) > 1 && fields[1] == "00000000" {
			t.Fatalf("the pod has a default route: %q", stdout)
		}
	}
	if _, _, code := execIn(t, ctx, cs, config, ns, "web", []string{"true"}); code != 0 {
		t.Fatalf("exec true: exit code %d", code)
	}

	// The metrics API (metrics-server, through the aggregator) measures the
	// node and, after its first scrapes, the pod.
	poll(t, ctx, 30*time.Second, "APIService v1beta1.metrics.k8s.io Available", func(ctx context.Context) error {
		return apiServiceAvailable(ctx, cs, "v1beta1.metrics.k8s.io")
	})
	poll(t, ctx, 120*time.Second, "metrics of the pod", func(ctx context.Context) error {
		var m metricsv1beta1.PodMetrics
		if err := getJSON(ctx, cs, "/apis/metrics.k8s.io/v1beta1/namespaces/"+ns+"/pods/web", &m); err != nil {
			return err
		}
		if len(m.Containers) != 1 {
			return fmt.Errorf("containers %+v", m.Containers)
		}
		mem := m.Containers[0].Usage[corev1.ResourceMemory]
		if mem.IsZero() {
			return fmt.Errorf("no memory usage: %+v", m.Containers[0].Usage)
		}
		t.Logf("pod web: cpu %s, memory %s", m.Containers[0].Usage.Cpu(), mem.String())
		return nil
	})
	var nm metricsv1beta1.NodeMetrics
	if err := getJSON(ctx, cs, "/apis/metrics.k8s.io/v1beta1/nodes/"+realNodeName, &nm); err != nil {
		t.Fatalf("metrics of node %s: %v", realNodeName, err)
	}
	t.Logf("node %s: cpu %s, memory %s", realNodeName, nm.Usage.Cpu(), nm.Usage.Memory())
}

func clientAndConfig(t *testing.T) (*kubernetes.Clientset, *rest.Config) {
	cs := client(t)
	config, err := kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	return cs, config
}

// newNamespace makes a namespace removed at the end of the test.
func newNamespace(t *testing.T, ctx context.Context, cs *kubernetes.Clientset) string {
	t.Helper()
	ns := "smoke-" + rand.String(6)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
	return ns
}

// execIn runs command in the pod's first container, returning its stdout,
// stderr and exit code (a failure to run it at all fails the test).
func execIn(t *testing.T, ctx context.Context, cs *kubernetes.Clientset, config *rest.Config, ns, pod string, command []string) (string, string, int) {
	t.Helper()
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(config, "GET", req.URL().String())
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = ws.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	var exit utilexec.CodeExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitStatus()
	default:
		t.Fatalf("exec %v in %s/%s: %v (stderr %q)", command, ns, pod, err, stderr.String())
		return "", "", -1
	}
}

func apiServiceAvailable(ctx context.Context, cs *kubernetes.Clientset, name string) error {
	var s struct {
		Status struct {
			Conditions []struct{ Type, Status, Reason, Message string } `json:"conditions"`
		} `json:"status"`
	}
	if err := getJSON(ctx, cs, "/apis/apiregistration.k8s.io/v1/apiservices/"+name, &s); err != nil {
		return err
	}
	for _, c := range s.Status.Conditions {
		if c.Type == "Available" {
			if c.Status == "True" {
				return nil
			}
			return fmt.Errorf("Available %s: %s %s", c.Status, c.Reason, c.Message)
		}
	}
	return fmt.Errorf("no Available condition yet")
}

func getJSON(ctx context.Context, cs *kubernetes.Clientset, path string, into any) error {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath(path).DoRaw(ctx)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, into)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func sameSubnet24(a, b net.IP) bool {
	if a.To4() == nil || b == nil || b.To4() == nil {
		return false
	}
	mask := net.CIDRMask(24, 32)
	return a.To4().Mask(mask).Equal(b.To4().Mask(mask))
}

func ptr[T any](v T) *T { return &v }
