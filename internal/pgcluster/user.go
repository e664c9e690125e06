package pgcluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// serverUsers are tried in order when running as root; the last one is
// created if none exists.
var serverUsers = []string{"postgres", "pgtenant"}

func unprivilegedUser() (*syscall.Credential, error) {
	for _, name := range serverUsers {
		if u, err := user.Lookup(name); err == nil {
			return credential(u)
		}
	}
	name := serverUsers[len(serverUsers)-1]
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pgcluster: PostgreSQL cannot run as root and creating the user %q failed: %v: %s", name, err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	return credential(u)
}

func credential(u *user.User) (*syscall.Credential, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: false}, nil
}

// reachableBinDir returns binDir if the server user can run binDir/postgres,
// else a world-readable mirror of the installation (binDir's parent, which
// holds bin/, lib/ and share/). The mirror is keyed by the installation's
// path and postgres' modification time, and built once.
func reachableBinDir(binDir string, cred *syscall.Credential) (string, error) {
	check := exec.Command(filepath.Join(binDir, "postgres"), "--version")
	check.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if check.Run() == nil {
		return binDir, nil
	}
	real, err := filepath.EvalSymlinks(binDir)
	if err != nil {
		return "", err
	}
	root := filepath.Dir(real)
	st, err := os.Stat(filepath.Join(real, "postgres"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d", root, st.ModTime().UnixNano())))
	mirror := filepath.Join(os.TempDir(), "pgtenant-postgres-"+hex.EncodeToString(sum[:6]))
	mirrorBin := filepath.Join(mirror, filepath.Base(real))
	if _, err := os.Stat(filepath.Join(mirror, ".complete")); err == nil {
		return mirrorBin, nil
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "pgtenant-postgres-copy-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(root, tmp); err != nil {
		return "", fmt.Errorf("pgcluster: mirror %s for the server user: %w", root, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, mirror); err != nil {
		// Another process built the same mirror first.
		if _, statErr := os.Stat(filepath.Join(mirror, ".complete")); statErr != nil {
			return "", err
		}
	}
	return mirrorBin, nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		default:
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFile(path, target, info.Mode().Perm()|0o444)
		}
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func urlUserinfo(user, password string) string {
	if password == "" {
		return url.User(user).String()
	}
	return url.UserPassword(user, password).String()
}
