package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register adds collectors of another part of popgate (the cluster
// client's) to /metrics. Their owner keeps them up to date; main
// registers them once. A nil Server ignores them.
func (s *Server) Register(cs ...prometheus.Collector) error {
	if s == nil {
		return nil
	}
	for _, c := range cs {
		if err := s.reg.Register(c); err != nil {
			return fmt.Errorf("metrics: registering a collector: %w", err)
		}
	}
	return nil
}
