package opmetrics

import (
	"crypto/x509"
	"encoding/pem"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// Kind is a policy kind whose counts are exported.
type Kind struct {
	Name   string
	Counts func() (loaded, failed int)
}

// Phase is a phase whose snapshot generation is exported.
type Phase struct {
	Name       string
	Generation func() uint64
}

// Collector implements prometheus.Collector.
type Collector struct {
	kinds    []Kind
	phases   []Phase
	certFile string

	policies   *prometheus.Desc
	generation *prometheus.Desc
	certExpiry *prometheus.Desc
}

// New returns a collector over kinds, phases and the PEM certificate in
// certFile (skipped when empty).
func New(kinds []Kind, phases []Phase, certFile string) *Collector {
	return &Collector{
		kinds: kinds, phases: phases, certFile: certFile,
		policies: prometheus.NewDesc("portcullis_policies",
			"Policies by kind and state: loaded (compiled and served) or failing (reported in status, not served).",
			[]string{"kind", "state"}, nil),
		generation: prometheus.NewDesc("portcullis_snapshot_generation",
			"Generation of the snapshot each phase serves; it grows with every published change.",
			[]string{"phase"}, nil),
		certExpiry: prometheus.NewDesc("portcullis_certificate_expiry_timestamp_seconds",
			"When the webhook serving certificate expires, as a Unix time.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.policies
	ch <- c.generation
	ch <- c.certExpiry
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, k := range c.kinds {
		loaded, failed := k.Counts()
		ch <- prometheus.MustNewConstMetric(c.policies, prometheus.GaugeValue, float64(loaded), k.Name, "loaded")
		ch <- prometheus.MustNewConstMetric(c.policies, prometheus.GaugeValue, float64(failed), k.Name, "failing")
	}
	for _, p := range c.phases {
		ch <- prometheus.MustNewConstMetric(c.generation, prometheus.GaugeValue, float64(p.Generation()), p.Name)
	}
	if c.certFile == "" {
		return
	}
	if b, err := os.ReadFile(c.certFile); err == nil {
		if block, _ := pem.Decode(b); block != nil {
			if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
				ch <- prometheus.MustNewConstMetric(c.certExpiry, prometheus.GaugeValue, float64(cert.NotAfter.Unix()))
			}
		}
	}
}
