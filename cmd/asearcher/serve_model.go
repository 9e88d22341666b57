package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/asearcher/asearcher/engine"
	"github.com/asearcher/asearcher/engine/serve"
)

func newServeModelCmd() *cobra.Command {
	var (
		modelDir, initPreset, addr, name, ckptDir, apiKey, apiKeyFile string
		maxBatch, maxNew, maxModels, maxPrompts, maxConns, maxLoRAs   int
		maxTinkerQueue                                                int
		maxBody, maxInflight, maxTinkerQueueBytes                     int64
		grace, bodyTimeout                                            time.Duration
	)
	c := &cobra.Command{
		Use:   "model",
		Short: "Serve the embedded model over the OpenAI, SGLang-compatible and Tinker-compatible APIs",
		Long: `One process serves a model directory (or a fresh --init preset) over:

  OpenAI   /v1/chat/completions (SSE streaming), /v1/completions, /v1/models[/{id}]
  SGLang   /generate, /abort_request, /pause_generation, /continue_generation,
           /update_weights_from_disk, /[get_]model_info, /[get_]server_info, /health
  Tinker   /api/v1/... (create_model, forward_backward, optim_step,
           save_weights_for_sampler, asample, retrieve_future, ...)

Generation keeps running while Tinker training steps run; weight swaps are
atomic and every generated token carries the version that produced it.
docs/api.md describes each endpoint. Bodies, prompt lists, connections and
body time are bounded (--max-body-bytes, --max-inflight-bytes, --max-prompts,
--max-connections, --body-timeout); past a bound the answer is a JSON 413,
429 or 503. Prefer --api-key-file or $ASEARCHER_SERVE_API_KEY to --api-key,
which other users can read in ps.`,
		Example: `  asearcher serve model --model runs/model --addr 127.0.0.1:30000
  asearcher serve model --init tiny --checkpoint-dir /tmp/ckpt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (modelDir == "") == (initPreset == "") {
				return fmt.Errorf("give --model DIR or --init tiny|small")
			}
			if initPreset != "" {
				cfg, err := engine.Preset(initPreset, 16)
				if err != nil {
					return err
				}
				tmp, err := os.MkdirTemp("", "asearcher-model-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				modelDir = filepath.Join(tmp, initPreset)
				if _, err := engine.InitModelDir(cmd.Context(), modelDir, engine.InitOptions{Config: cfg, Seed: 1, DType: engine.F32}); err != nil {
					return err
				}
				if name == "" {
					name = "asearcher-" + initPreset
				}
			}
			key, err := serveAPIKey(apiKey, apiKeyFile)
			if err != nil {
				return err
			}
			w, tok, err := engine.OpenModelDir(modelDir)
			if err != nil {
				return fmt.Errorf("open --model %s: %w", modelDir, err)
			}
			s, err := serve.New(serve.Options{ModelName: name, ModelDir: modelDir, Weights: w, Tokenizer: tok,
				MaxBatch: maxBatch, DefaultMaxNewTokens: maxNew, CheckpointDir: ckptDir, MaxModels: maxModels, MaxLoadedLoRAs: maxLoRAs,
				APIKey: key, MaxBodyBytes: maxBody, MaxInflightBytes: maxInflight, MaxPrompts: maxPrompts,
				MaxConns: maxConns, BodyTimeout: bodyTimeout, MaxTinkerQueue: maxTinkerQueue, MaxTinkerQueueBytes: maxTinkerQueueBytes,
				Logger: slog.Default()})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				s.Close()
				return fmt.Errorf("listen on %s: %w (use --addr to pick another)", addr, err)
			}
			slog.Info("serving model", "addr", "http://"+ln.Addr().String(), "model", s.ModelName(), "dir", modelDir, "api_key_required", key != "")
			return s.Serve(cmd.Context(), ln, grace)
		},
	}
	f := c.Flags()
	f.StringVar(&modelDir, "model", "", "model directory (config.json, model.safetensors, tokenizer.json)")
	f.StringVar(&initPreset, "init", "", "serve a freshly initialised preset instead (tiny or small)")
	f.StringVar(&addr, "addr", "127.0.0.1:30000", "listen address")
	f.StringVar(&name, "name", "", "served model name (default: the directory's name)")
	f.StringVar(&ckptDir, "checkpoint-dir", "", "where Tinker save_weights / save_weights_for_sampler write (empty: sampler weights in memory, save_weights refused)")
	// The default is never the key itself, so --help cannot print it.
	f.StringVar(&apiKey, "api-key", "", "require this key (Authorization: Bearer or X-API-Key); visible in ps, prefer --api-key-file or $ASEARCHER_SERVE_API_KEY")
	f.StringVar(&apiKeyFile, "api-key-file", "", "read the required key from this file (first line)")
	f.Int64Var(&maxBody, "max-body-bytes", 16<<20, "largest request body; larger ones get a 413")
	f.Int64Var(&maxInflight, "max-inflight-bytes", 64<<20, "summed bodies of the requests being served; past it requests wait, then get a 429")
	f.IntVar(&maxPrompts, "max-prompts", 256, "most sequences (prompts × n) one /v1/completions or /generate request may ask for; more get a 413")
	f.IntVar(&maxConns, "max-connections", 1024, "open connections; at the cap the stalest one not running a request is closed")
	f.DurationVar(&bodyTimeout, "body-timeout", time.Minute, "how long a request body may take to arrive")
	f.IntVar(&maxBatch, "max-batch", 64, "sequences decoded together")
	f.IntVar(&maxNew, "max-new-tokens", 128, "default max_new_tokens when a request sets none")
	f.IntVar(&maxModels, "max-models", 4, "Tinker training models held at once (a full-weight one is a full copy with Adam state; a LoRA one only its adapter's)")
	f.IntVar(&maxTinkerQueue, "max-tinker-queue", 2048, "Tinker requests submitted and not yet finished (all models and samplers); past it a submission gets a 429 with Retry-After")
	f.Int64Var(&maxTinkerQueueBytes, "max-tinker-queue-bytes", 256<<20, "summed bodies of those requests (at least --max-body-bytes); past it a submission gets a 429 with Retry-After")
	f.IntVar(&maxLoRAs, "max-loaded-loras", 8, "LoRA adapters loaded for serving at once (/load_lora_adapter, /v1/load_lora_adapter); more are refused until one is unloaded")
	f.DurationVar(&grace, "grace", 10*time.Second, "on shutdown, how long in-flight requests may finish before they are aborted")
	return c
}

// serveAPIKey is the key to require: --api-key, else the first line of
// --api-key-file, else $ASEARCHER_SERVE_API_KEY. Its value is never
// printed.
func serveAPIKey(flagKey, file string) (string, error) {
	if flagKey != "" && file != "" {
		return "", fmt.Errorf("give --api-key or --api-key-file, not both")
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read --api-key-file: %w", err)
		}
		key, _, _ := strings.Cut(string(data), "\n")
		key = strings.TrimSpace(key)
		if key == "" {
			return "", fmt.Errorf("--api-key-file %s is empty", file)
		}
		return key, nil
	}
	if flagKey != "" {
		return flagKey, nil
	}
	return os.Getenv("ASEARCHER_SERVE_API_KEY"), nil
}
