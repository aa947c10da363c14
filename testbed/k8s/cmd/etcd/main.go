// etcd, built from go.etcd.io/etcd/server/v3 at the version k8s.io/kubernetes
// requires: the same entry point as etcd's own main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
