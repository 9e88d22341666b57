// Package publish gets each new policy version from the trainer into a
// sampling fleet that cannot read the trainer's own paths (stock SGLang and
// vLLM cannot open tinker:// paths): it fetches the trainer's sampler
// checkpoint (a Tinker archive, or a directory on a shared filesystem),
// writes it where the servers read it, and loads it there.
//
//   - LoRA (sglang-lora, vllm-lora): the adapter is hot-loaded under a
//     versioned name (policy-v7) next to the previous one; new requests name
//     it, requests in flight finish on the adapter they started on, and an
//     old adapter is unloaded once nothing uses it. No pause, no drain.
//   - Full (sglang-full): the adapter is merged into the base model and the
//     merged directory is loaded with update_weights_from_disk, AReaL's
//     pause / update / continue protocol (rl.SGLangPublisher).
package publish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/export"
	"github.com/asearcher/asearcher/peft"
)

// Source turns the path a trainer returns from save_weights_for_sampler
// into local directories.
type Source struct {
	// TinkerURL and APIKey reach the Tinker server for tinker:// paths
	// (downloaded through its checkpoint archive route).
	TinkerURL, APIKey string
	HTTPClient        *http.Client
	// Base is the base model directory, needed to merge an adapter.
	Base string
	// Limits bound archive downloads and unpacking.
	Limits export.ArchiveLimits
}

// isRemote says whether path must be downloaded.
func isRemote(path string) bool {
	return strings.HasPrefix(path, "tinker://") || strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://")
}

// Adapter writes the PEFT adapter behind path into dest (which must not
// exist), with target_modules set from the tensors.
func (s Source) Adapter(ctx context.Context, path, dest string) error {
	if isRemote(path) || strings.HasSuffix(path, ".tar.gz") {
		_, err := export.FromArchive(ctx, export.ArchiveOptions{Archive: path, TinkerURL: s.TinkerURL, APIKey: s.APIKey,
			HTTPClient: s.HTTPClient, Base: s.Base, AdapterOut: dest, Limits: s.Limits})
		return err
	}
	if _, err := os.Stat(filepath.Join(path, peft.ConfigFile)); err != nil {
		return fmt.Errorf("publish: %s is not a PEFT adapter directory (no %s); a LoRA publisher needs the trainer to save LoRA adapters", path, peft.ConfigFile)
	}
	a, err := peft.Load(path)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if s.Base != "" {
		cfg, err := engine.LoadConfig(s.Base)
		if err != nil {
			return fmt.Errorf("publish: base model: %w", err)
		}
		if err := a.Check(export.DimsOf(cfg)); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	return a.Save(dest)
}

// Merged makes a full model directory of path's weights: an adapter is
// merged into Base and written to dest; a model directory on a shared
// filesystem is used where it is (the returned path says which).
func (s Source) Merged(ctx context.Context, path, dest string) (string, error) {
	if isRemote(path) || strings.HasSuffix(path, ".tar.gz") {
		// A full-weights archive needs no base; FromArchive says so when
		// the archive holds an adapter and Base is missing.
		_, err := export.FromArchive(ctx, export.ArchiveOptions{Archive: path, TinkerURL: s.TinkerURL, APIKey: s.APIKey,
			HTTPClient: s.HTTPClient, Base: s.Base, Out: dest, Limits: s.Limits})
		return dest, err
	}
	if _, err := os.Stat(filepath.Join(path, "model.safetensors")); err == nil {
		return path, nil
	}
	if _, err := os.Stat(filepath.Join(path, peft.ConfigFile)); err != nil {
		return "", fmt.Errorf("publish: %s is neither a model directory nor a PEFT adapter", path)
	}
	if s.Base == "" {
		return "", errors.New("publish: merging an adapter needs the base model directory (cluster.publish.base)")
	}
	a, err := peft.Load(path)
	if err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if _, err := export.MergeAdapter(a, s.Base, dest, engine.F32); err != nil {
		return "", err
	}
	return dest, nil
}
