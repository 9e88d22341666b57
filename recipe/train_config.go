package recipe

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/asearcher/asearcher/rl"
)

// TrainMode is what `asearcher train --config` runs.
type TrainMode string

const (
	// ModeDemo is the embedded end-to-end demo (RunDemo, docs/rl.md).
	ModeDemo TrainMode = "demo"
	// ModeCluster trains on real backends (RunLaunched, docs/cluster.md).
	ModeCluster TrainMode = "cluster"
	// ModeReal trains a real pretrained model on real questions (RunReal,
	// docs/real-model.md): a file with a real: block.
	ModeReal TrainMode = "real"
)

// TrainConfig is a decoded `asearcher train --config` file: one schema
// whose mode follows from its blocks. A file with a cluster: (or launch:)
// block is a cluster run and reads only cluster:, launch: and rl:; one
// with a real: block (and no cluster:) trains a real model (RealConfig);
// any other file is the demo's. The demo's own settings (seed:, world:,
// model:, agent:, warmup:, eval:) beside a cluster: block are an error
// rather than silently ignored, so a user never believes a setting
// applies to a run that does not read it.
type TrainConfig struct {
	Mode TrainMode
	// Demo is set when Mode is ModeDemo, over DefaultDemoConfig.
	Demo DemoConfig
	// Cluster is set when Mode is ModeCluster, over DefaultClusterFile.
	Cluster ClusterFile
	// Real is set when Mode is ModeReal, over DefaultRealConfig.
	Real RealConfig
}

// LoadTrainConfig reads a train config file: the mode's defaults, then
// the file strictly (unknown fields are errors), then Validate.
func LoadTrainConfig(path string) (TrainConfig, error) {
	return LoadTrainConfigOver(path, DefaultDemoConfig())
}

// LoadTrainConfigOver is LoadTrainConfig with a demo file decoded over
// demo (a preset) instead of the default.
func LoadTrainConfigOver(path string, demo DemoConfig) (TrainConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return TrainConfig{}, fmt.Errorf("read config: %w", err)
	}
	c, err := decodeTrainConfig(raw, demo)
	if err != nil {
		return c, fmt.Errorf("config %s: %s", path, oneLine(err))
	}
	return c, nil
}

// DecodeTrainConfig decodes and validates a train config file's bytes.
func DecodeTrainConfig(raw []byte) (TrainConfig, error) {
	return decodeTrainConfig(raw, DefaultDemoConfig())
}

func decodeTrainConfig(raw []byte, demo DemoConfig) (TrainConfig, error) {
	top, err := topKeys(raw)
	if err != nil {
		return TrainConfig{}, err
	}
	_, cluster := top["cluster"]
	_, launched := top["launch"]
	if _, hasReal := top["real"]; hasReal && !cluster && !launched {
		c := TrainConfig{Mode: ModeReal, Real: DefaultRealConfig("")}
		if err := rl.DecodeYAML(bytes.NewReader(raw), &c.Real); err != nil {
			return c, err
		}
		return c, c.Real.Validate()
	}
	if !cluster && !launched {
		c := TrainConfig{Mode: ModeDemo, Demo: demo}
		if err := rl.DecodeYAML(bytes.NewReader(raw), &c.Demo); err != nil {
			return c, err
		}
		return c, c.Demo.Validate()
	}
	c := TrainConfig{Mode: ModeCluster}
	if mixed := demoOnlyKeys(top); len(mixed) > 0 {
		return c, fmt.Errorf("%s: demo settings (docs/rl.md) cannot go with a cluster: or launch: block; a cluster run reads only cluster:, launch: and rl: (docs/cluster.md)", strings.Join(mixed, ", "))
	}
	c.Cluster, err = DecodeClusterFile(raw)
	return c, err
}

// demoOnlyKeys are the top-level keys of top that DemoConfig has and
// ClusterFile has not, sorted; derived from the two schemas so a field
// added to either stays classified.
func demoOnlyKeys(top map[string]any) []string {
	cluster := yamlKeys(reflect.TypeFor[ClusterFile]())
	demo := yamlKeys(reflect.TypeFor[DemoConfig]())
	var out []string
	for k := range top {
		if slices.Contains(demo, k) && !slices.Contains(cluster, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// yamlKeys lists the yaml names of a struct's fields.
func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// LoadDemoConfig reads a demo train config (LoadTrainConfig) and refuses
// a cluster one.
func LoadDemoConfig(path string) (DemoConfig, error) {
	c, err := LoadTrainConfig(path)
	if err != nil {
		return DefaultDemoConfig(), err
	}
	if c.Mode != ModeDemo {
		return DefaultDemoConfig(), fmt.Errorf("config %s is a %s run, not the demo", path, c.Mode)
	}
	return c.Demo, nil
}

// LoadClusterFile reads a cluster train config (LoadTrainConfig) and
// refuses a demo one.
func LoadClusterFile(path string) (ClusterFile, error) {
	c, err := LoadTrainConfig(path)
	if err != nil {
		return DefaultClusterFile(), err
	}
	if c.Mode != ModeCluster {
		return DefaultClusterFile(), fmt.Errorf("config %s: no cluster: block; see docs/cluster.md", path)
	}
	return c.Cluster, nil
}
