package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ContainerMemory is one container's memory as the kubelet reports it (from its cgroup): the
// working set the kubelet evicts by, and anonymous RSS (the binary's mapped pages excluded).
type ContainerMemory struct {
	Namespace, Pod, Container string
	WorkingSetBytes, RSSBytes uint64
}

// summary is the part of the kubelet's /stats/summary read here.
type summary struct {
	Pods []struct {
		PodRef struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"podRef"`
		Containers []struct {
			Name   string `json:"name"`
			Memory struct {
				WorkingSetBytes *uint64 `json:"workingSetBytes"`
				RSSBytes        *uint64 `json:"rssBytes"`
			} `json:"memory"`
		} `json:"containers"`
	} `json:"pods"`
}

// ContainerMemory asks every node's kubelet (through the API server) for its containers' memory.
func (k *Kube) ContainerMemory(ctx context.Context) ([]ContainerMemory, error) {
	nodes, err := k.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []ContainerMemory
	for _, n := range nodes.Items {
		raw, err := k.Client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", n.Name, "proxy/stats/summary").DoRaw(ctx)
		if err != nil {
			return nil, fmt.Errorf("kubelet stats of %s: %w", n.Name, err)
		}
		var s summary
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("kubelet stats of %s: %w", n.Name, err)
		}
		for _, p := range s.Pods {
			for _, c := range p.Containers {
				if c.Memory.WorkingSetBytes == nil || c.Memory.RSSBytes == nil {
					continue
				}
				out = append(out, ContainerMemory{Namespace: p.PodRef.Namespace, Pod: p.PodRef.Name, Container: c.Name,
					WorkingSetBytes: *c.Memory.WorkingSetBytes, RSSBytes: *c.Memory.RSSBytes})
			}
		}
	}
	return out, nil
}

// MemorySpread summarises values in MiB as "min / median / max".
func MemorySpread(bytes []uint64) string {
	if len(bytes) == 0 {
		return "none"
	}
	s := append([]uint64(nil), bytes...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	return fmt.Sprintf("%.1f / %.1f / %.1f MiB", mib(s[0]), mib(s[len(s)/2]), mib(s[len(s)-1]))
}
