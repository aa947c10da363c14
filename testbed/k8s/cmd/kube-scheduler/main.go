// kube-scheduler, as k8s.io/kubernetes/cmd/kube-scheduler/scheduler.go builds
// it. kwok simulates the kubelet of nodes but schedules nothing: pods need a
// scheduler to be bound to its fake node.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version" // for version metric registration
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	command := app.NewSchedulerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
