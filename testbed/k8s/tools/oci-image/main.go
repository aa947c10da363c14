// oci-image writes a one-layer OCI image archive (an image layout as a
// tar, what `ctr images import` reads) from files of this machine, so that
// the testbed's real node runs images built here and never pulls one:
//
//	oci-image -o busybox.tar -name localhost/testbed/busybox:1 \
//	    -file /bin/busybox=/bin/busybox:0755 -link /bin/sh=busybox \
//	    -dir /tmp:1777 -cmd sh
//
// Every entry is owned by root with a fixed time, so the same inputs make
// the same image (the same digests). The platform is linux/amd64.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// entry is one file, directory or symlink of the layer.
type entry struct {
	name   string // absolute path in the image
	kind   byte   // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	mode   int64
	source string // host file (TypeReg) or link target (TypeSymlink)
}

var epoch = time.Unix(0, 0).UTC()

func main() {
	var files, links, dirs, entrypoint, cmd, env list
	out := flag.String("o", "", "the archive to write")
	name := flag.String("name", "", "the image reference, e.g. localhost/testbed/busybox:1")
	flag.Var(&files, "file", "IMAGE_PATH=HOST_PATH:MODE, a regular file copied in (repeatable)")
	flag.Var(&links, "link", "IMAGE_PATH=TARGET, a symlink (repeatable)")
	flag.Var(&dirs, "dir", "IMAGE_PATH:MODE, a directory (repeatable)")
	flag.Var(&entrypoint, "entrypoint", "a word of the ENTRYPOINT (repeatable)")
	flag.Var(&cmd, "cmd", "a word of the CMD (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE of the image's environment (repeatable)")
	flag.Parse()
	if *out == "" || *name == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: oci-image -o FILE -name REF [-file P=HOST:MODE]... [-link P=TARGET]... [-dir P:MODE]... [-entrypoint W]... [-cmd W]... [-env K=V]...")
		os.Exit(2)
	}
	entries, err := parseEntries(files, links, dirs)
	if err == nil {
		err = write(*out, *name, entries, entrypoint, cmd, env)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "oci-image: %v\n", err)
		os.Exit(1)
	}
}

func parseEntries(files, links, dirs list) ([]entry, error) {
	var entries []entry
	for _, f := range files {
		imagePath, rest, ok := strings.Cut(f, "=")
		i := strings.LastIndex(rest, ":")
		if !ok || i < 0 {
			return nil, fmt.Errorf("-file %q: want IMAGE_PATH=HOST_PATH:MODE", f)
		}
		mode, err := strconv.ParseInt(rest[i+1:], 8, 64)
		if err != nil {
			return nil, fmt.Errorf("-file %q: mode %q is not octal", f, rest[i+1:])
		}
		entries = append(entries, entry{name: imagePath, kind: tar.TypeReg, mode: mode, source: rest[:i]})
	}
	for _, l := range links {
		imagePath, target, ok := strings.Cut(l, "=")
		if !ok || target == "" {
			return nil, fmt.Errorf("-link %q: want IMAGE_PATH=TARGET", l)
		}
		entries = append(entries, entry{name: imagePath, kind: tar.TypeSymlink, mode: 0o777, source: target})
	}
	for _, d := range dirs {
		i := strings.LastIndex(d, ":")
		if i < 0 {
			return nil, fmt.Errorf("-dir %q: want IMAGE_PATH:MODE", d)
		}
		mode, err := strconv.ParseInt(d[i+1:], 8, 64)
		if err != nil {
			return nil, fmt.Errorf("-dir %q: mode %q is not octal", d, d[i+1:])
		}
		entries = append(entries, entry{name: d[:i], kind: tar.TypeDir, mode: mode})
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if !path.IsAbs(e.name) || path.Clean(e.name) != e.name || e.name == "/" {
			return nil, fmt.Errorf("%q: an image path must be absolute and clean", e.name)
		}
		if seen[e.name] {
			return nil, fmt.Errorf("%q is given twice", e.name)
		}
		seen[e.name] = true
	}
	// Parents first; a parent not given is a 0755 directory.
	for _, e := range entries {
		for dir := path.Dir(e.name); dir != "/"; dir = path.Dir(dir) {
			if !seen[dir] {
				seen[dir] = true
				entries = append(entries, entry{name: dir, kind: tar.TypeDir, mode: 0o755})
			}
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	return entries, nil
}

// layer is the uncompressed tar of the entries.
func layer(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: strings.TrimPrefix(e.name, "/"), Typeflag: e.kind, Mode: e.mode,
			ModTime: epoch, Format: tar.FormatPAX,
		}
		var body []byte
		switch e.kind {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeSymlink:
			h.Linkname = e.source
		case tar.TypeReg:
			b, err := os.ReadFile(e.source)
			if err != nil {
				return nil, err
			}
			body = b
			h.Size = int64(len(b))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    map[string]string `json:"platform,omitempty"`
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func write(out, name string, entries []entry, entrypoint, cmd, env list) error {
	tag := name[strings.LastIndex(name, "/")+1:]
	if i := strings.LastIndex(tag, ":"); i >= 0 {
		tag = tag[i+1:]
	} else {
		return fmt.Errorf("-name %q has no tag", name)
	}
	layerTar, err := layer(entries)
	if err != nil {
		return err
	}
	if len(env) == 0 {
		env = list{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config": map[string]any{
			"Env": []string(env), "Entrypoint": nilIfEmpty(entrypoint), "Cmd": nilIfEmpty(cmd),
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{digest(layerTar)}},
		"history": []map[string]string{{"created": epoch.Format(time.RFC3339), "created_by": "testbed/k8s/tools/oci-image"}},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digest(config), Size: int64(len(config))},
		"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: digest(layerTar), Size: int64(len(layerTar))}},
	})
	if err != nil {
		return err
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest(manifest), Size: int64(len(manifest)),
			Annotations: map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
			Platform:    map[string]string{"architecture": "amd64", "os": "linux"},
		}},
	})
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	files := []struct {
		name string
		body []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{"blobs/sha256/" + strings.TrimPrefix(digest(config), "sha256:"), config},
		{"blobs/sha256/" + strings.TrimPrefix(digest(manifest), "sha256:"), manifest},
		{"blobs/sha256/" + strings.TrimPrefix(digest(layerTar), "sha256:"), layerTar},
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, file := range files {
		if err := tw.WriteHeader(&tar.Header{Name: file.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(file.body)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(file.body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func nilIfEmpty(l list) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}
