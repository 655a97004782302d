package main

import (
	"testing"

	"github.com/popgate/popgate/cluster"
	"github.com/popgate/popgate/config"
)

// TestAuditInstanceComesFromTheClusterBlock checks that audit records name
// the cluster block's instance, and no instance without a cluster block.
func TestAuditInstanceComesFromTheClusterBlock(t *testing.T) {
	if got := auditInstance(&config.Config{}); got != "" {
		t.Errorf("without a cluster block: instance %q, want none", got)
	}
	if got := auditInstance(&config.Config{Cluster: &cluster.Options{Instance: "pg1"}}); got != "pg1" {
		t.Errorf("with cluster instance pg1: instance %q", got)
	}
}
