// Package smoke checks a running testbed (scripts/k8s-testbed.sh up): a
// Deployment's pods are scheduled onto kwok's fake node and become Running
// and Ready with a pod IP, an HPA raises it to its minimum, and its pods go
// away when it is scaled to 0; a pod runs on the real node
// (real_node_test.go).
package smoke

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const nodeName = "fake-node"

func kubeconfig() (*rest.Config, error) {
	path := os.Getenv("KUBECONFIG")
	if path == "" {
		return nil, errors.New("KUBECONFIG is not set: start the testbed first (eval \"$(bash scripts/k8s-testbed.sh up)\")")
	}
	config, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %v", path, err)
	}
	return config, nil
}

func client(t *testing.T) *kubernetes.Clientset {
	config, err := kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// poll calls cond every 250ms until it returns nil, or fails the test with
// its last error after the timeout.
func poll(t *testing.T, ctx context.Context, timeout time.Duration, what string, cond func(context.Context) error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			// Not the deadline's own error: the condition's.
			last = err
		}
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s: %v", what, timeout, last)
	}
}

func TestDeploymentOnFakeNode(t *testing.T) {
	ctx := context.Background()
	cs := client(t)

	node, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("node %s: %v", nodeName, err)
	}
	t.Logf("node %s, kubelet %s", node.Name, node.Status.NodeInfo.KubeletVersion)

	ns := "smoke-" + rand.String(6)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"heritage": "drycc"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })

	labels := map[string]string{"app": "smoke", "type": "web", "heritage": "drycc"}
	replicas := int32(2)
	_, err = cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke-web", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:  "web",
						Image: "registry.invalid/smoke:v1", // never pulled: no kubelet
						Args:  []string{"web"},
					}},
				},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	selector := "app=smoke,type=web"

	waitReady(t, ctx, cs, ns, selector, 2)
	poll(t, ctx, 30*time.Second, "deployment reports 2 ready replicas", func(ctx context.Context) error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "smoke-web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.ReadyReplicas != 2 {
			return fmt.Errorf("readyReplicas %d", d.Status.ReadyReplicas)
		}
		return nil
	})

	// The HPA controller runs: with no metrics it still raises the
	// Deployment to minReplicas.
	minReplicas, cpu := int32(3), int32(75)
	_, err = cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke-web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "smoke-web"},
			MinReplicas:    &minReplicas,
			MaxReplicas:    5,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &cpu},
				},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, ctx, cs, ns, selector, 3)
	if err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Delete(ctx, "smoke-web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// Scale to 0 through the /scale subresource, as the engine will.
	_, err = cs.AppsV1().Deployments(ns).UpdateScale(ctx, "smoke-web", &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke-web", Namespace: ns},
		Spec:       autoscalingv1.ScaleSpec{Replicas: 0},
	}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 90*time.Second, "pods gone after scaling to 0", func(ctx context.Context) error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		if len(pods.Items) != 0 {
			return fmt.Errorf("%d pods left", len(pods.Items))
		}
		return nil
	})
}

// deleteNamespace deletes ns and waits until the namespace controller
// (kube-controller-manager) has emptied and removed it.
func deleteNamespace(t *testing.T, cs *kubernetes.Clientset, ns string) {
	ctx := context.Background()
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Errorf("delete namespace %s: %v", ns, err)
		return
	}
	poll(t, ctx, 90*time.Second, "namespace "+ns+" gone", func(ctx context.Context) error {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

// waitReady waits until exactly n pods match the selector, every one bound
// to the fake node, Running, Ready and with an IP.
func waitReady(t *testing.T, ctx context.Context, cs *kubernetes.Clientset, ns, selector string, n int) {
	t.Helper()
	poll(t, ctx, 90*time.Second, fmt.Sprintf("%d pods Running and Ready on %s", n, nodeName), func(ctx context.Context) error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		if len(pods.Items) != n {
			return fmt.Errorf("%d pods", len(pods.Items))
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName != nodeName {
				return fmt.Errorf("pod %s on node %q", p.Name, p.Spec.NodeName)
			}
			if p.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("pod %s is %s", p.Name, p.Status.Phase)
			}
			if !podReady(&p) {
				return fmt.Errorf("pod %s is not Ready", p.Name)
			}
			if p.Status.PodIP == "" {
				return fmt.Errorf("pod %s has no IP", p.Name)
			}
		}
		return nil
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
