package accesslog

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"os"
	"time"

	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/checkpoint"
)

// Tamper evidence (FileOptions.Checkpoint): every line of the file output
// extends a hash chain, h(n) = SHA-256(h(n-1) || line n) from h(0) = 32
// zero bytes, across rotations. A rotated segment gets a sidecar,
// SEGMENT.checkpoint (SEGMENT without .gz), holding the signed checkpoint
// (internal/checkpoint) the segment started from (none for the first) and
// the one it ends at; PATH.checkpoint holds the newest. [Verify] recomputes
// every segment from its start: an edited or removed line changes its end,
// a removed segment breaks the chain between its neighbours, a removed
// newest segment leaves PATH.checkpoint unreached.

// sidecarExt names a segment's checkpoint file.
const sidecarExt = ".checkpoint"

// chain is the file output's running hash chain.
type chain struct {
	signer *checkpoint.Signer
	d      hash.Hash
	size   int64
	head   [sha256.Size]byte
	start  []byte // the signed note this segment started from; nil: genesis
}

func (c *chain) add(line []byte) {
	c.d.Reset()
	c.d.Write(c.head[:])
	c.d.Write(line)
	c.d.Sum(c.head[:0])
	c.size++
}

// openChain restores the chain at start: the newest checkpoint (signed by
// this signer), then the lines the active file already holds.
func openChain(signer *checkpoint.Signer, path string) (*chain, error) {
	c := &chain{signer: signer, d: sha256.New()}
	if data, err := os.ReadFile(path + sidecarExt); err == nil {
		s, err := signer.Verifier().Verify(data)
		if err != nil {
			return nil, fmt.Errorf("accesslog: %s: %w", path+sidecarExt, err)
		}
		c.size, c.start = s.Checkpoint.Size, data
		copy(c.head[:], s.Checkpoint.Hash)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("accesslog: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("accesslog: %w", err)
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n') + 1
		if i == 0 {
			i = len(data)
		}
		c.add(data[:i])
		data = data[i:]
	}
	return c, nil
}

// seal signs where the chain is and writes the rotated segment's sidecar
// and PATH.checkpoint.
func (c *chain) seal(segment, path string, now time.Time) error {
	s, err := c.signer.Sign(checkpoint.Checkpoint{Origin: c.signer.Name(), Size: c.size, Hash: bytes.Clone(c.head[:]), Time: now})
	if err != nil {
		return fmt.Errorf("accesslog: checkpoint: %w", err)
	}
	var side []byte
	if c.start != nil {
		side = append(append(side, c.start...), '\n')
	}
	side = append(side, s.Note()...)
	if err := atomicfile.Write(segment+sidecarExt, side, 0o644); err != nil {
		return fmt.Errorf("accesslog: checkpoint: %w", err)
	}
	if err := atomicfile.Write(path+sidecarExt, s.Note(), 0o644); err != nil {
		return fmt.Errorf("accesslog: checkpoint: %w", err)
	}
	c.start = s.Note()
	return nil
}
