// Package keys is the in-memory key store shared by the server and agent key manager plugins. It
// behaves as SPIRE's built-in memory key manager: keys live only in the process, the fingerprint is
// the hex SHA-256 of the PKIX public key, and SignData signs a digest the caller computed.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"sort"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Key types, numbered as the KeyType enum of both key manager protos.
const (
	ECP256  = 1
	ECP384  = 2
	RSA2048 = 3
	RSA4096 = 4
)

// Key is one generated key.
type Key struct {
	ID          string
	Type        int32
	Signer      crypto.Signer
	PKIX        []byte
	Fingerprint string
}

// Store holds the keys by ID.
type Store struct {
	mu   sync.RWMutex
	keys map[string]*Key
}

// New is an empty store.
func New() *Store {
	return &Store{keys: map[string]*Key{}}
}

// Generate makes a key of the given type under id, replacing any key with that id.
func (s *Store) Generate(id string, keyType int32) (*Key, error) {
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "key id is required")
	}
	var signer crypto.Signer
	var err error
	switch keyType {
	case ECP256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECP384:
		signer, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA4096:
		signer, err = rsa.GenerateKey(rand.Reader, 4096)
	case 0:
		return nil, status.Error(codes.InvalidArgument, "key type is required")
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unable to generate key %q for unknown key type %d", id, keyType)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "unable to generate key %q: %v", id, err)
	}
	pkix, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "unable to marshal public key %q: %v", id, err)
	}
	sum := sha256.Sum256(pkix)
	key := &Key{ID: id, Type: keyType, Signer: signer, PKIX: pkix, Fingerprint: hex.EncodeToString(sum[:])}
	s.mu.Lock()
	s.keys[id] = key
	s.mu.Unlock()
	return key, nil
}

// Get is the key with this id, or NotFound.
func (s *Store) Get(id string) (*Key, error) {
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "key id is required")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	key, ok := s.keys[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no such key %q", id)
	}
	return key, nil
}

// All is every key, sorted by ID.
func (s *Store) All() []*Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Key, 0, len(s.keys))
	for _, key := range s.keys {
		out = append(out, key)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Sign signs digest with key id. hash is the HashAlgorithm enum value (its numbers are Go's
// crypto.Hash values); pss selects RSA-PSS with saltLength, else PKCS#1 v1.5 for RSA and ASN.1
// ECDSA for EC keys.
func (s *Store) Sign(id string, digest []byte, hash int32, pss bool, saltLength int32) ([]byte, string, error) {
	if hash == 0 {
		return nil, "", status.Error(codes.InvalidArgument, "failed to sign data: hash algorithm is required")
	}
	key, err := s.Get(id)
	if err != nil {
		return nil, "", status.Errorf(status.Code(err), "failed to sign data: %s", status.Convert(err).Message())
	}
	var opts crypto.SignerOpts = crypto.Hash(hash)
	if pss {
		opts = &rsa.PSSOptions{SaltLength: int(saltLength), Hash: crypto.Hash(hash)}
	}
	signature, err := key.Signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, "", status.Errorf(codes.Internal, "failed to sign data: keypair %q signing operation failed: %v", id, err)
	}
	return signature, key.Fingerprint, nil
}
