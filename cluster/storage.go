package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

// Storage is certmagic's Storage in Redis: certificates, keys, the ACME
// account and the challenge tokens of distributed solving, shared by every
// instance, so that one instance orders, all serve, and any answers a
// challenge. Each key is a hash (value, modification time) and a member
// of one sorted index, written together by one script, so List and Stat
// see directories without scanning the keyspace. Locks are in locks.go.
type Storage struct {
	c *Client
	// LockTTL is how long a lock outlives its holder's last renewal: the
	// time a crashed instance blocks the others. Set before first use.
	LockTTL time.Duration

	locks lockTable
}

var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
)

// DefaultLockTTL is Storage.LockTTL's default: renewed every third of it,
// long enough to survive a slow Redis, short enough that a crashed
// instance delays a renewal by well under a minute.
const DefaultLockTTL = 30 * time.Second

// Key names in Redis.
const (
	storagePrefix = "popgate:acme:"
	dataPrefix    = storagePrefix + "data:" // + key: hash {v: value, m: unix ms}
	indexKey      = storagePrefix + "index" // sorted set of every key, score 0 (lexical order)
	lockPrefix    = storagePrefix + "lock:" // + name: the holder's token, with a TTL
)

// NewStorage returns the Storage over c.
func NewStorage(c *Client) *Storage {
	return &Storage{c: c, LockTTL: DefaultLockTTL}
}

// String names the storage in certmagic's logs.
func (s *Storage) String() string { return "redis storage (instance " + s.c.instance + ")" }

var storeScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'm', ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1`)

// deleteScript deletes a key and, as for a directory, every key below it.
var deleteScript = redis.NewScript(`
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local below = redis.call('ZRANGEBYLEX', KEYS[2], '[' .. ARGV[1] .. '/', '[' .. ARGV[1] .. '/\255')
for i, k in ipairs(below) do
  redis.call('DEL', ARGV[2] .. k)
  redis.call('ZREM', KEYS[2], k)
end
return n + #below`)

// call runs f with the Client's timeout and records its outcome.
func (s *Storage) call(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := s.c.ctx(ctx)
	defer cancel()
	start := time.Now()
	return s.c.observe(opStorage, start, f(ctx))
}

// normKey cleans a certmagic key: no leading or trailing slash.
func normKey(key string) string { return strings.Trim(key, "/") }

// Store implements certmagic.Storage.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	key = normKey(key)
	err := s.call(ctx, func(ctx context.Context) error {
		return storeScript.Run(ctx, s.c.rdb, []string{dataPrefix + key, indexKey},
			key, value, time.Now().UnixMilli()).Err()
	})
	if err != nil {
		return fmt.Errorf("cluster storage: store %q: %w", key, err)
	}
	return nil
}

// Load implements certmagic.Storage.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	key = normKey(key)
	var v []byte
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		v, err = s.c.rdb.HGet(ctx, dataPrefix+key, "v").Bytes()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("cluster storage: %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster storage: load %q: %w", key, err)
	}
	return v, nil
}

// Delete implements certmagic.Storage: a key, or a directory and all
// below it; a missing key is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	key = normKey(key)
	err := s.call(ctx, func(ctx context.Context) error {
		return deleteScript.Run(ctx, s.c.rdb, []string{dataPrefix + key, indexKey}, key, dataPrefix).Err()
	})
	if err != nil {
		return fmt.Errorf("cluster storage: delete %q: %w", key, err)
	}
	return nil
}

// Exists implements certmagic.Storage.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// Stat implements certmagic.Storage.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	key = normKey(key)
	var vals []any
	var below []string
	err := s.call(ctx, func(ctx context.Context) error {
		cmds, err := s.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.HMGet(ctx, dataPrefix+key, "m", "v")
			p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: indexKey, Start: "[" + key + "/", Stop: "[" + key + "/\xff", ByLex: true, Count: 1})
			return nil
		})
		if err != nil {
			return err
		}
		vals = cmds[0].(*redis.SliceCmd).Val()
		below = cmds[1].(*redis.StringSliceCmd).Val()
		return nil
	})
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("cluster storage: stat %q: %w", key, err)
	}
	if m, ok := vals[0].(string); ok {
		ms, _ := strconv.ParseInt(m, 10, 64)
		v, _ := vals[1].(string)
		return certmagic.KeyInfo{Key: key, Modified: time.UnixMilli(ms), Size: int64(len(v)), IsTerminal: true}, nil
	}
	if len(below) > 0 {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, fmt.Errorf("cluster storage: %q: %w", key, fs.ErrNotExist)
}

// List implements certmagic.Storage: the keys directly below prefix
// (files and directories), or with recursive every key and directory
// below it, each as a full key.
func (s *Storage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	prefix = normKey(prefix)
	lo, hi := "-", "+"
	if prefix != "" {
		lo, hi = "["+prefix+"/", "["+prefix+"/\xff"
	}
	var keys []string
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		keys, err = s.c.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: indexKey, Start: lo, Stop: hi, ByLex: true}).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster storage: list %q: %w", prefix, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("cluster storage: %q: %w", prefix, fs.ErrNotExist)
	}
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, k := range keys {
		rest := strings.TrimPrefix(k, prefix)
		rest = strings.TrimPrefix(rest, "/")
		parts := strings.Split(rest, "/")
		if !recursive {
			add(path.Join(prefix, parts[0]))
			continue
		}
		for i := range parts {
			add(path.Join(prefix, path.Join(parts[:i+1]...)))
		}
	}
	return out, nil
}
