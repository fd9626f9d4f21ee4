package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// bootImage is what the lab boots directly: the image's kernel and
// initramfs, and the kernel arguments every boot of the image needs.
type bootImage struct {
	Kernel, Initrd string
	Args           []string
}

// ensureImage returns the image to boot, building it with mkimage.sh as the
// policy says.
func ensureImage(ctx context.Context, o Options) (bootImage, error) {
	kernel, initrd, err := ensureKernel(ctx, o)
	if err != nil {
		return bootImage{}, err
	}
	args, err := kernelArgs(o.ImageDir)
	return bootImage{Kernel: kernel, Initrd: initrd, Args: args}, err
}

// kernelArgs reads the kernel arguments mkimage.sh wrote next to the
// kernel (from image/cmdline).
func kernelArgs(dir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return nil, fmt.Errorf("read the image's kernel arguments: %w (an image older than image/cmdline: build it again with mkimage.sh)", err)
	}
	args := strings.Fields(string(data))
	if len(args) == 0 {
		return nil, fmt.Errorf("read the image's kernel arguments: %s is empty", filepath.Join(dir, "cmdline"))
	}
	return args, nil
}

// ensureKernel returns the kernel and initramfs, building them when the
// policy says so.
func ensureKernel(ctx context.Context, o Options) (kernel, initrd string, err error) {
	kernel = filepath.Join(o.ImageDir, "vmlinuz")
	initrd = filepath.Join(o.ImageDir, "initrd.img")
	have := exists(kernel) && exists(initrd)
	if have && o.Image == ImageKeep {
		return kernel, initrd, nil
	}
	var bin, inputs string
	if o.Image != ImageKeep {
		// Build sand as mkimage.sh would; if it and everything else the
		// image is made of are what the image was built from, it is current.
		bin = filepath.Join(o.Repo, "out", "build", "lab-sand")
		sum, berr := buildSand(ctx, o.Repo, bin)
		switch {
		case berr != nil && have:
			o.Logger.Warn("cannot build sand; booting the image as it is", "err", berr)
			return kernel, initrd, nil
		case berr != nil:
			return "", "", berr
		}
		if inputs, err = imageInputs(o.Repo, sum); err != nil {
			return "", "", err
		}
		old, _ := os.ReadFile(filepath.Join(o.ImageDir, inputsFile))
		if have && o.Image == ImageAuto && strings.TrimSpace(string(old)) == inputs {
			o.Logger.Info("image is current", "dir", o.ImageDir)
			return kernel, initrd, nil
		}
	}
	o.Logger.Info("building the appliance image (mkimage.sh)", "out", o.ImageDir)
	args := []string{"--out", o.ImageDir}
	if bin != "" {
		args = append(args, "--sand", bin)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(o.Repo, "mkimage.sh"), args...)
	cmd.Dir = o.Repo
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("build the image: mkimage.sh: %w:\n%s", err, tail(out.String(), 30))
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		o.Logger.Info("mkimage: " + strings.TrimSpace(strings.TrimPrefix(line, "mkimage: ")))
	}
	if inputs != "" {
		if err := os.WriteFile(filepath.Join(o.ImageDir, inputsFile), []byte(inputs+"\n"), 0o644); err != nil {
			return "", "", fmt.Errorf("build the image: %w", err)
		}
	}
	return kernel, initrd, nil
}

// inputsFile, in the image directory, holds the imageInputs sum of the
// image that was built there.
const inputsFile = "inputs.sha256"

// imageInputs sums what an image is made of besides its Debian packages:
// the sand binary (by its sha256), mkimage.sh and every file under image/
// (units, udev rules, scripts, package and module lists). A change to any
// of them makes the lab build the image again: keyed on sand alone, a
// changed unit file went unnoticed and a benchmark ran the old image.
func imageInputs(repo, sandSum string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "sand %s\n", sandSum)
	add := func(path string, d fs.DirEntry) error {
		rel, err := filepath.Rel(repo, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v\n", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "-> %s\n", target)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%d\n", len(data))
			h.Write(data)
		}
		return nil
	}
	err := filepath.WalkDir(filepath.Join(repo, "image"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return add(path, d)
	})
	if err == nil {
		var info fs.FileInfo
		if info, err = os.Lstat(filepath.Join(repo, "mkimage.sh")); err == nil {
			err = add(filepath.Join(repo, "mkimage.sh"), fs.FileInfoToDirEntry(info))
		}
	}
	if err != nil {
		return "", fmt.Errorf("sum the image's inputs: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// buildSand builds the sand binary the way mkimage.sh does and returns its
// sha256.
func buildSand(ctx context.Context, repo, bin string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
		if !exists(gobin) {
			return "", fmt.Errorf("build sand: no go command")
		}
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", fmt.Errorf("build sand: %w", err)
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./sand")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build sand: %w: %s", err, bytes.TrimSpace(out))
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("build sand: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
