package export

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// ArchiveLimits bound what a checkpoint archive may unpack to, so a
// corrupt or hostile archive cannot fill the disk.
type ArchiveLimits struct {
	// MaxBytes caps the unpacked size of all files together [64 GiB] and
	// the size of a download.
	MaxBytes int64
	// MaxFiles caps the number of entries [10000].
	MaxFiles int
}

func (l ArchiveLimits) withDefaults() ArchiveLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 64 << 30
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = 10000
	}
	return l
}

// ExtractArchive unpacks a tar.gz stream into dest (which must exist).
// Only regular files and directories are written; links, devices and any
// name that is absolute or climbs out of dest ("..") are refused with an
// error, as are archives past the limits. Nothing is ever written outside
// dest.
func ExtractArchive(r io.Reader, dest string, lim ArchiveLimits) error {
	lim = lim.withDefaults()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("checkpoint archive: not a gzip stream: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	var total int64
	for files := 0; ; files++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("checkpoint archive: %w", err)
		}
		if files >= lim.MaxFiles {
			return fmt.Errorf("checkpoint archive: more than %d entries", lim.MaxFiles)
		}
		if h.Typeflag == tar.TypeDir && path.Clean(h.Name) == "/" {
			// SkyRL's archives open with a directory entry named "/":
			// the archive's own root, which is dest. Any other absolute
			// name is still refused.
			continue
		}
		name, err := safeName(h.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue // "./"
		}
		target := filepath.Join(dest, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := mkdirUnder(dest, name); err != nil {
				return err
			}
		case tar.TypeReg:
			if h.Size < 0 || total+h.Size > lim.MaxBytes {
				return fmt.Errorf("checkpoint archive: %s would unpack past the %d-byte limit", name, lim.MaxBytes)
			}
			if dir := path.Dir(name); dir != "." {
				if err := mkdirUnder(dest, dir); err != nil {
					return err
				}
			}
			n, err := writeNew(target, tr, h.Size)
			total += n
			if err != nil {
				return fmt.Errorf("checkpoint archive: %s: %w", name, err)
			}
		case tar.TypeXGlobalHeader:
			// pax metadata for the whole archive; nothing to write
		default:
			return fmt.Errorf("checkpoint archive: %s is a %s; only regular files and directories are accepted", name, typeName(h.Typeflag))
		}
	}
}

// safeName cleans an entry name and refuses one that is absolute or leaves
// the extraction directory.
func safeName(name string) (string, error) {
	if strings.Contains(name, `\`) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("checkpoint archive: entry name %q has a backslash or NUL", name)
	}
	if strings.HasPrefix(name, "/") || filepath.IsAbs(name) {
		return "", fmt.Errorf("checkpoint archive: entry %q is an absolute path", name)
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", nil
	}
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("checkpoint archive: entry %q points outside the archive", name)
	}
	return clean, nil
}

// mkdirUnder creates dest/rel one component at a time, refusing to pass
// through anything that is not a plain directory (a symlink planted by an
// earlier entry cannot exist — links are refused — but dest may hold
// files of its own).
func mkdirUnder(dest, rel string) error {
	cur := dest
	for _, part := range strings.Split(rel, "/") {
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return fmt.Errorf("checkpoint archive: %w", err)
			}
		case err != nil:
			return fmt.Errorf("checkpoint archive: %w", err)
		case !st.IsDir():
			return fmt.Errorf("checkpoint archive: %s is not a directory", rel)
		}
	}
	return nil
}

// writeNew copies exactly size bytes into a new file (never through an
// existing one) and reports how many it wrote.
func writeNew(target string, r io.Reader, size int64) (int64, error) {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("truncated: %d of %d bytes", n, size)
	}
	return n, err
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "FIFO"
	}
	return fmt.Sprintf("tar entry of type %q", t)
}

// ParseTinkerPath splits a sampler checkpoint path
// tinker://MODEL/sampler_weights/NAME into the training run (model) id and
// the checkpoint name the archive route takes.
func ParseTinkerPath(p string) (model, name string, err error) {
	rest, ok := strings.CutPrefix(p, "tinker://")
	parts := strings.Split(rest, "/")
	if len(parts) == 2 {
		// SkyRL's save_weights_for_sampler answers tinker://MODEL/NAME,
		// with no kind segment; its archive route takes the same NAME.
		parts = []string{parts[0], "sampler_weights", parts[1]}
	}
	if !ok || len(parts) != 3 || parts[0] == "" || parts[2] == "" || parts[1] != "sampler_weights" && parts[1] != "weights" {
		return "", "", fmt.Errorf("%q is not a tinker://MODEL/sampler_weights/NAME checkpoint path", p)
	}
	for _, s := range []string{parts[0], parts[2]} {
		if s == "." || s == ".." || strings.ContainsAny(s, `?#%\`) {
			return "", "", fmt.Errorf("%q is not a tinker://MODEL/sampler_weights/NAME checkpoint path", p)
		}
	}
	return parts[0], parts[2], nil
}

// ArchiveURL is the Tinker route that answers with (a redirect to) a
// checkpoint's tar.gz, as SkyRL names it: GET
// /api/v1/training_runs/{model}/checkpoints/{name}/archive.
func ArchiveURL(baseURL, tinkerPath string) (string, error) {
	urls, err := ArchiveURLs(baseURL, tinkerPath)
	if err != nil {
		return "", err
	}
	return urls[0], nil
}

// ArchiveURLs are the archive routes to try in order: SkyRL's (the
// checkpoint's name) and the official SDK's (recent tinker SDKs send a
// sampler checkpoint's id as "sampler_weights/NAME").
func ArchiveURLs(baseURL, tinkerPath string) ([]string, error) {
	model, name, err := ParseTinkerPath(tinkerPath)
	if err != nil {
		return nil, err
	}
	root := strings.TrimRight(baseURL, "/") + "/api/v1/training_runs/" + url.PathEscape(model) + "/checkpoints/"
	kind := strings.Split(strings.TrimPrefix(tinkerPath, "tinker://"), "/")[1]
	return []string{root + url.PathEscape(name) + "/archive", root + kind + "/" + url.PathEscape(name) + "/archive"}, nil
}

// HTTPError is a download that the server answered with an error status.
type HTTPError struct {
	URL    string
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("checkpoint archive %s: HTTP %d: %s", e.URL, e.Status, e.Body)
}

// Download fetches a checkpoint archive into w, following the server's
// redirect to the download location. The API key goes only to the Tinker
// server's own host: a redirect elsewhere (a signed storage URL) is
// followed without it. At most maxBytes are accepted.
func Download(ctx context.Context, client *http.Client, archiveURL, apiKey string, w io.Writer, maxBytes int64) error {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Minute}
	}
	if maxBytes <= 0 {
		maxBytes = ArchiveLimits{}.withDefaults().MaxBytes
	}
	origin, err := url.Parse(archiveURL)
	if err != nil {
		return fmt.Errorf("checkpoint archive url: %w", err)
	}
	c := *client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("more than 5 redirects")
		}
		if req.URL.Host != origin.Host {
			req.Header.Del("X-API-Key")
			req.Header.Del("Authorization")
		}
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, archiveURL, nil)
	if err != nil {
		return fmt.Errorf("checkpoint archive: %w", err)
	}
	req.Header.Set("Accept", "application/gzip")
	if apiKey != "" {
		req.Header.Set("X-API-Key", apiKey)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("checkpoint archive: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return &HTTPError{URL: redact(archiveURL), Status: resp.StatusCode, Body: strings.TrimSpace(string(msg))}
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return fmt.Errorf("checkpoint archive: download: %w", err)
	}
	if n > maxBytes {
		return fmt.Errorf("checkpoint archive: the download is larger than the %d-byte limit", maxBytes)
	}
	return nil
}

// redact drops a URL's query (signed URLs carry credentials there).
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}
