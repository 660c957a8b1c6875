//! PIN/UV auth protocols one and two (CTAP 2.1 §6.5.6, §6.5.7), for both the platform
//! (host driver) and the authenticator side, plus the PIN encoding rules (§6.5.1) and the
//! pinUvAuthToken permissions (§6.5.5.7).
//!
//! | operation      | protocol 1                         | protocol 2                                         |
//! |----------------|------------------------------------|----------------------------------------------------|
//! | key agreement  | ECDH P-256, Z = x coordinate       | same                                               |
//! | kdf(Z)         | SHA-256(Z) (32 bytes)              | HKDF-SHA-256(salt 32×0, "CTAP2 HMAC key") ‖ HKDF(…, "CTAP2 AES key") (64 bytes) |
//! | encrypt        | AES-256-CBC, IV = 0, no padding    | AES-256-CBC, random IV prepended                   |
//! | authenticate   | LEFT(HMAC-SHA-256, 16)             | HMAC-SHA-256 (32 bytes), key = first 32 bytes      |
//!
//! Randomness is injected as `rng: &mut dyn FnMut(&mut [u8])` (fill the buffer with random bytes).

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::commands::client_pin;
use super::cose::CoseKey;
use super::error::Ctap2Error;
use super::extensions::HmacSecretInput;
use super::status::StatusCode;
use crate::secret::Secret;

/// A random source: fills the buffer with random bytes.
pub type Rng<'a> = &'a mut dyn FnMut(&mut [u8]);

/// pinUvAuthToken permissions (CTAP 2.1 §6.5.5.7). Open newtype over the bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(pub u8);

impl Permissions {
    /// 0x01 mc: MakeCredential.
    pub const MAKE_CREDENTIAL: Self = Self(0x01);
    /// 0x02 ga: GetAssertion.
    pub const GET_ASSERTION: Self = Self(0x02);
    /// 0x04 cm: CredentialManagement.
    pub const CREDENTIAL_MANAGEMENT: Self = Self(0x04);
    /// 0x08 be: BioEnrollment.
    pub const BIO_ENROLLMENT: Self = Self(0x08);
    /// 0x10 lbw: LargeBlobWrite.
    pub const LARGE_BLOB_WRITE: Self = Self(0x10);
    /// 0x20 acfg: AuthenticatorConfiguration.
    pub const AUTHENTICATOR_CONFIGURATION: Self = Self(0x20);

    /// True when every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Permissions {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// A PIN/UV auth protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinProtocol {
    /// PIN/UV auth protocol one (CTAP 2.1 §6.5.6).
    One,
    /// PIN/UV auth protocol two (CTAP 2.1 §6.5.7).
    Two,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of every length, so `new_from_slice` cannot fail; the fallback keeps
    // the code panic-free.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hkdf_sha256(z: &[u8], info: &[u8]) -> Result<[u8; 32], Ctap2Error> {
    let hkdf = hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), z);
    let mut okm = [0u8; 32];
    hkdf.expand(info, &mut okm)
        .map_err(|_| Ctap2Error::PinProtocol("HKDF expand"))?;
    Ok(okm)
}

impl PinProtocol {
    /// The protocol number on the wire (1 or 2).
    pub fn version(self) -> u64 {
        match self {
            Self::One => 1,
            Self::Two => 2,
        }
    }

    /// From the wire number; other numbers are not supported.
    pub fn from_version(version: u64) -> Option<Self> {
        match version {
            1 => Some(Self::One),
            2 => Some(Self::Two),
            _ => None,
        }
    }

    /// kdf(Z): the shared secret from the ECDH x coordinate.
    pub fn kdf(self, z: &[u8; 32]) -> Result<SharedSecret, Ctap2Error> {
        let secret = match self {
            Self::One => Sha256::digest(z).to_vec(),
            Self::Two => {
                let mut secret = hkdf_sha256(z, b"CTAP2 HMAC key")?.to_vec();
                secret.extend_from_slice(&hkdf_sha256(z, b"CTAP2 AES key")?);
                secret
            }
        };
        Ok(SharedSecret {
            protocol: self,
            secret: Secret::new(secret),
        })
    }

    /// authenticate(key, message): v1 LEFT(HMAC-SHA-256(key, message), 16), v2 the full 32 bytes.
    /// `key` is a pinUvAuthToken (or, through [`SharedSecret::authenticate`], a shared secret).
    pub fn authenticate(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        let mac = hmac_sha256(key, message);
        match self {
            Self::One => mac[..16].to_vec(),
            Self::Two => mac.to_vec(),
        }
    }

    /// verify(key, message, signature) in constant time. Protocol 1 takes a 16-byte signature,
    /// protocol 2 a 32-byte one; other lengths fail.
    pub fn verify(self, key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        crate::secret::ct_eq(&self.authenticate(key, message), signature)
    }

    /// Platform side: a fresh key pair, ECDH with the authenticator's key-agreement key, and kdf.
    /// Returns the platform's public key (for `keyAgreement`) and the shared secret.
    pub fn encapsulate(
        self,
        peer: &CoseKey,
        rng: Rng<'_>,
    ) -> Result<(CoseKey, SharedSecret), Ctap2Error> {
        let key = KeyAgreementKey::generate(rng)?;
        let shared = key.decapsulate(self, peer)?;
        Ok((key.public_key(), shared))
    }
}

/// An ECDH P-256 key-agreement key pair: the authenticator's (regenerated at power-up and
/// reset) or a platform's ephemeral one.
#[derive(Clone)]
pub struct KeyAgreementKey {
    secret: p256::SecretKey,
}

impl std::fmt::Debug for KeyAgreementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAgreementKey")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl KeyAgreementKey {
    /// A new random key pair.
    pub fn generate(rng: Rng<'_>) -> Result<Self, Ctap2Error> {
        // A uniformly random 32-byte string is a valid scalar with probability 1 - 2^-32;
        // retry a few times to be certain.
        for _ in 0..16 {
            let mut bytes = Secret::new([0u8; 32]);
            rng(bytes.expose_secret_mut());
            if let Ok(secret) = p256::SecretKey::from_slice(bytes.expose_secret()) {
                return Ok(Self { secret });
            }
        }
        Err(Ctap2Error::PinProtocol(
            "random source gives no valid P-256 scalar",
        ))
    }

    /// A key pair from a fixed private scalar (tests, deterministic vectors).
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<Self, Ctap2Error> {
        p256::SecretKey::from_slice(bytes)
            .map(|secret| Self { secret })
            .map_err(|_| Ctap2Error::PinProtocol("invalid P-256 scalar"))
    }

    /// The public key as a COSE key-agreement key `{1: 2, 3: -25, -1: 1, -2: x, -3: y}`.
    pub fn public_key(&self) -> CoseKey {
        CoseKey::key_agreement(&self.secret.public_key())
    }

    /// ECDH with `peer` and kdf: the shared secret (authenticator side: the platform's
    /// `keyAgreement`; platform side: the authenticator's).
    pub fn decapsulate(
        &self,
        protocol: PinProtocol,
        peer: &CoseKey,
    ) -> Result<SharedSecret, Ctap2Error> {
        let peer = peer.to_p256()?;
        let shared = self.secret.diffie_hellman(&peer);
        let mut z = Secret::new([0u8; 32]);
        z.expose_secret_mut()
            .copy_from_slice(shared.raw_secret_bytes());
        protocol.kdf(z.expose_secret())
    }
}

/// The shared secret of a PIN/UV auth protocol: 32 bytes (v1) or HMAC key ‖ AES key (v2, 64 bytes).
#[derive(Debug, Clone)]
pub struct SharedSecret {
    protocol: PinProtocol,
    secret: Secret<Vec<u8>>,
}

impl SharedSecret {
    /// The protocol this secret belongs to.
    pub fn protocol(&self) -> PinProtocol {
        self.protocol
    }

    /// The raw secret (32 or 64 bytes).
    pub fn expose_secret(&self) -> &[u8] {
        self.secret.expose_secret()
    }

    fn hmac_key(&self) -> &[u8] {
        let secret = self.secret.expose_secret();
        &secret[..secret.len().min(32)]
    }

    fn aes_key(&self) -> [u8; 32] {
        // v1: the whole 32-byte secret; v2: the last 32 of 64 bytes. `kdf` is the only
        // constructor, so the slice is always 32 bytes long.
        let secret = self.secret.expose_secret();
        let mut key = [0u8; 32];
        if let Some(tail) = secret.get(secret.len().saturating_sub(32)..)
            && tail.len() == 32
        {
            key.copy_from_slice(tail);
        }
        key
    }

    /// encrypt(key, plaintext): the plaintext must be a multiple of 16 bytes. Protocol 2 takes
    /// a random IV from `rng` and prepends it.
    pub fn encrypt(&self, plaintext: &[u8], rng: Rng<'_>) -> Result<Vec<u8>, Ctap2Error> {
        let mut iv = [0u8; 16];
        if self.protocol == PinProtocol::Two {
            rng(&mut iv);
        }
        self.encrypt_with_iv(plaintext, iv)
    }

    /// encrypt with a given IV (protocol 2; protocol 1 ignores it and uses the zero IV).
    pub fn encrypt_with_iv(&self, plaintext: &[u8], iv: [u8; 16]) -> Result<Vec<u8>, Ctap2Error> {
        if !plaintext.len().is_multiple_of(16) {
            return Err(Ctap2Error::PinProtocol(
                "plaintext is not a multiple of 16 bytes",
            ));
        }
        let key = Secret::new(self.aes_key());
        let iv = match self.protocol {
            PinProtocol::One => [0u8; 16],
            PinProtocol::Two => iv,
        };
        let ciphertext = cbc::Encryptor::<aes::Aes256>::new(key.expose_secret().into(), &iv.into())
            .encrypt_padded_vec::<NoPadding>(plaintext);
        Ok(match self.protocol {
            PinProtocol::One => ciphertext,
            PinProtocol::Two => [iv.as_slice(), &ciphertext].concat(),
        })
    }

    /// decrypt(key, ciphertext). Protocol 2 reads the IV from the first 16 bytes.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Secret<Vec<u8>>, Ctap2Error> {
        let (iv, body) = match self.protocol {
            PinProtocol::One => ([0u8; 16], ciphertext),
            PinProtocol::Two => {
                if ciphertext.len() < 16 {
                    return Err(Ctap2Error::PinProtocol("ciphertext shorter than the IV"));
                }
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&ciphertext[..16]);
                (iv, &ciphertext[16..])
            }
        };
        if !body.len().is_multiple_of(16) {
            return Err(Ctap2Error::PinProtocol(
                "ciphertext is not a multiple of 16 bytes",
            ));
        }
        let key = Secret::new(self.aes_key());
        cbc::Decryptor::<aes::Aes256>::new(key.expose_secret().into(), &iv.into())
            .decrypt_padded_vec::<NoPadding>(body)
            .map(Secret::new)
            .map_err(|_| Ctap2Error::PinProtocol("decryption failed"))
    }

    /// authenticate(sharedSecret, message) with this secret's HMAC key.
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        self.protocol.authenticate(self.hmac_key(), message)
    }

    /// verify(sharedSecret, message, signature), constant time.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.protocol.verify(self.hmac_key(), message, signature)
    }
}

/// Authenticator side of the hmac-secret GetAssertion input (CTAP 2.1 §12.5): the shared
/// secret from `keyAgreement`, saltAuth verified, saltEnc decrypted to one or two 32-byte salts.
/// Errors: unsupported pinUvAuthProtocol or a bad key → 0x02 CTAP1_ERR_INVALID_PARAMETER;
/// saltAuth mismatch → 0x33 CTAP2_ERR_PIN_AUTH_INVALID; salts not 32 or 64 bytes →
/// 0x03 CTAP1_ERR_INVALID_LENGTH.
pub fn open_hmac_secret_input(
    input: &HmacSecretInput,
    authenticator_key: &KeyAgreementKey,
) -> Result<(SharedSecret, Secret<Vec<u8>>), StatusCode> {
    let protocol = PinProtocol::from_version(input.pin_uv_auth_protocol.map_or(1, u64::from))
        .ok_or(StatusCode::CTAP1_ERR_INVALID_PARAMETER)?;
    let shared = authenticator_key
        .decapsulate(protocol, &input.key_agreement)
        .map_err(|_| StatusCode::CTAP1_ERR_INVALID_PARAMETER)?;
    if !shared.verify(&input.salt_enc, &input.salt_auth) {
        return Err(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID);
    }
    let salts = shared
        .decrypt(&input.salt_enc)
        .map_err(|_| StatusCode::CTAP1_ERR_INVALID_LENGTH)?;
    match salts.expose_secret().len() {
        32 | 64 => Ok((shared, salts)),
        _ => Err(StatusCode::CTAP1_ERR_INVALID_LENGTH),
    }
}

/// The hmac-secret outputs for the decrypted salts: HMAC-SHA-256(CredRandom, salt) for each
/// 32-byte salt, concatenated (encrypt the result with the shared secret for the response).
pub fn hmac_secret_outputs(cred_random: &[u8], salts: &[u8]) -> Secret<Vec<u8>> {
    let mut outputs = Secret::new(Vec::with_capacity(salts.len()));
    for salt in salts.chunks(32) {
        outputs
            .expose_secret_mut()
            .extend_from_slice(&hmac_sha256(cred_random, salt));
    }
    outputs
}

/// LEFT(SHA-256(pin), 16): the PIN hash that getPinToken and changePIN send encrypted.
pub fn pin_hash(pin: &[u8]) -> Secret<[u8; 16]> {
    let digest = Sha256::digest(pin);
    let mut hash = Secret::new([0u8; 16]);
    hash.expose_secret_mut().copy_from_slice(&digest[..16]);
    hash
}

/// Pads a new PIN with 0x00 to 64 bytes (CTAP 2.1 §6.5.5.5). The PIN must be 4..=63 bytes of
/// UTF-8 and contain no NUL; the authenticator checks its own minimum length in code points.
pub fn pad_pin(pin: &str) -> Result<Secret<Vec<u8>>, Ctap2Error> {
    let bytes = pin.as_bytes();
    if bytes.len() < 4 {
        return Err(Ctap2Error::InvalidPin("shorter than 4 bytes"));
    }
    if bytes.len() > 63 {
        return Err(Ctap2Error::InvalidPin("longer than 63 bytes"));
    }
    if bytes.contains(&0) {
        return Err(Ctap2Error::InvalidPin("contains NUL"));
    }
    let mut padded = vec![0u8; 64];
    padded[..bytes.len()].copy_from_slice(bytes);
    Ok(Secret::new(padded))
}

/// Authenticator side of [`pad_pin`]: the PIN bytes of a decrypted paddedNewPin.
/// Not 64 bytes → 0x02 CTAP1_ERR_INVALID_PARAMETER; fewer than 4 bytes before the padding,
/// no padding at all (64-byte PIN) or not UTF-8 → 0x37 CTAP2_ERR_PIN_POLICY_VIOLATION.
pub fn unpad_pin(padded: &[u8]) -> Result<Secret<Vec<u8>>, StatusCode> {
    if padded.len() != 64 {
        return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
    }
    let len = padded
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(padded.len());
    if !(4..=63).contains(&len) || padded[len..].iter().any(|&byte| byte != 0) {
        return Err(StatusCode::CTAP2_ERR_PIN_POLICY_VIOLATION);
    }
    let pin = Secret::new(padded[..len].to_vec());
    if std::str::from_utf8(pin.expose_secret()).is_err() {
        return Err(StatusCode::CTAP2_ERR_PIN_POLICY_VIOLATION);
    }
    Ok(pin)
}

/// The platform's side of one key agreement: its public key (sent as `keyAgreement`) and the
/// shared secret. Builders for the ClientPIN requests and the hmac-secret input.
#[derive(Debug, Clone)]
pub struct PlatformSession {
    /// The platform's key-agreement public key.
    pub key_agreement: CoseKey,
    /// The shared secret.
    pub shared: SharedSecret,
}

impl PlatformSession {
    /// Encapsulates against the authenticator's key-agreement key (from getKeyAgreement).
    pub fn new(
        protocol: PinProtocol,
        authenticator_key: &CoseKey,
        rng: Rng<'_>,
    ) -> Result<Self, Ctap2Error> {
        let (key_agreement, shared) = protocol.encapsulate(authenticator_key, rng)?;
        Ok(Self {
            key_agreement,
            shared,
        })
    }

    fn version(&self) -> u64 {
        self.shared.protocol().version()
    }

    /// setPIN: newPinEnc = encrypt(paddedPin), pinUvAuthParam = authenticate(newPinEnc).
    pub fn set_pin(&self, new_pin: &str, rng: Rng<'_>) -> Result<client_pin::Request, Ctap2Error> {
        let new_pin_enc = self
            .shared
            .encrypt(pad_pin(new_pin)?.expose_secret(), rng)?;
        let auth = self.shared.authenticate(&new_pin_enc);
        Ok(client_pin::Request::set_pin(
            self.version(),
            self.key_agreement.clone(),
            new_pin_enc,
            auth,
        ))
    }

    /// changePIN: pinHashEnc, newPinEnc, pinUvAuthParam = authenticate(newPinEnc ‖ pinHashEnc).
    pub fn change_pin(
        &self,
        current_pin: &str,
        new_pin: &str,
        rng: Rng<'_>,
    ) -> Result<client_pin::Request, Ctap2Error> {
        let pin_hash_enc = self
            .shared
            .encrypt(pin_hash(current_pin.as_bytes()).expose_secret(), rng)?;
        let new_pin_enc = self
            .shared
            .encrypt(pad_pin(new_pin)?.expose_secret(), rng)?;
        let auth = self
            .shared
            .authenticate(&[new_pin_enc.as_slice(), &pin_hash_enc].concat());
        Ok(client_pin::Request::change_pin(
            self.version(),
            self.key_agreement.clone(),
            pin_hash_enc,
            new_pin_enc,
            auth,
        ))
    }

    /// getPinToken (CTAP 2.0 style, no permissions).
    pub fn get_pin_token(
        &self,
        pin: &str,
        rng: Rng<'_>,
    ) -> Result<client_pin::Request, Ctap2Error> {
        let pin_hash_enc = self
            .shared
            .encrypt(pin_hash(pin.as_bytes()).expose_secret(), rng)?;
        Ok(client_pin::Request::get_pin_token(
            self.version(),
            self.key_agreement.clone(),
            pin_hash_enc,
        ))
    }

    /// getPinUvAuthTokenUsingPinWithPermissions.
    pub fn get_pin_uv_auth_token_using_pin(
        &self,
        pin: &str,
        permissions: Permissions,
        rp_id: Option<String>,
        rng: Rng<'_>,
    ) -> Result<client_pin::Request, Ctap2Error> {
        let pin_hash_enc = self
            .shared
            .encrypt(pin_hash(pin.as_bytes()).expose_secret(), rng)?;
        Ok(
            client_pin::Request::get_pin_uv_auth_token_using_pin_with_permissions(
                self.version(),
                self.key_agreement.clone(),
                pin_hash_enc,
                permissions,
                rp_id,
            ),
        )
    }

    /// getPinUvAuthTokenUsingUvWithPermissions.
    pub fn get_pin_uv_auth_token_using_uv(
        &self,
        permissions: Permissions,
        rp_id: Option<String>,
    ) -> client_pin::Request {
        client_pin::Request::get_pin_uv_auth_token_using_uv_with_permissions(
            self.version(),
            self.key_agreement.clone(),
            permissions,
            rp_id,
        )
    }

    /// Decrypts the pinUvAuthToken of a getPinToken / getPinUvAuthToken… response.
    pub fn decrypt_token(
        &self,
        response: &client_pin::Response,
    ) -> Result<Secret<Vec<u8>>, Ctap2Error> {
        let encrypted = response
            .pin_uv_auth_token
            .as_deref()
            .ok_or(Ctap2Error::PinProtocol(
                "response carries no pinUvAuthToken",
            ))?;
        let token = self.shared.decrypt(encrypted)?;
        match token.expose_secret().len() {
            16 | 32 => Ok(token),
            _ => Err(Ctap2Error::PinProtocol(
                "pinUvAuthToken is not 16 or 32 bytes",
            )),
        }
    }

    /// The hmac-secret GetAssertion input for one or two 32-byte salts (CTAP 2.1 §12.5).
    pub fn hmac_secret_input(
        &self,
        salt1: &[u8; 32],
        salt2: Option<&[u8; 32]>,
        rng: Rng<'_>,
    ) -> Result<HmacSecretInput, Ctap2Error> {
        let mut salts = Secret::new(salt1.to_vec());
        if let Some(salt2) = salt2 {
            salts.expose_secret_mut().extend_from_slice(salt2);
        }
        let salt_enc = self.shared.encrypt(salts.expose_secret(), rng)?;
        let salt_auth = self.shared.authenticate(&salt_enc);
        Ok(HmacSecretInput {
            key_agreement: self.key_agreement.clone(),
            salt_enc,
            salt_auth,
            pin_uv_auth_protocol: match self.shared.protocol() {
                PinProtocol::One => None,
                PinProtocol::Two => Some(2),
            },
        })
    }

    /// Decrypts the hmac-secret output: one or two 32-byte outputs.
    pub fn hmac_secret_output(&self, encrypted: &[u8]) -> Result<Secret<Vec<u8>>, Ctap2Error> {
        let output = self.shared.decrypt(encrypted)?;
        match output.expose_secret().len() {
            32 | 64 => Ok(output),
            _ => Err(Ctap2Error::PinProtocol(
                "hmac-secret output is not 32 or 64 bytes",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter_rng() -> impl FnMut(&mut [u8]) {
        let mut next = 1u8;
        move |buf: &mut [u8]| {
            for byte in buf {
                *byte = next;
                next = next.wrapping_add(1);
            }
        }
    }

    #[test]
    fn both_sides_agree_and_round_trip() {
        let mut rng = counter_rng();
        for protocol in [PinProtocol::One, PinProtocol::Two] {
            let authenticator = KeyAgreementKey::generate(&mut rng).unwrap();
            let session =
                PlatformSession::new(protocol, &authenticator.public_key(), &mut rng).unwrap();
            let theirs = authenticator
                .decapsulate(protocol, &session.key_agreement)
                .unwrap();
            assert_eq!(theirs.expose_secret(), session.shared.expose_secret());
            assert_eq!(
                theirs.expose_secret().len(),
                if protocol == PinProtocol::One { 32 } else { 64 }
            );

            let request = session.change_pin("1234", "87654321", &mut rng).unwrap();
            let new_pin_enc = request.new_pin_enc.clone().unwrap();
            let pin_hash_enc = request.pin_hash_enc.clone().unwrap();
            let message = [new_pin_enc.as_slice(), &pin_hash_enc].concat();
            assert!(theirs.verify(&message, request.pin_uv_auth_param.as_deref().unwrap()));
            assert!(!theirs.verify(&new_pin_enc, request.pin_uv_auth_param.as_deref().unwrap()));
            let padded = theirs.decrypt(&new_pin_enc).unwrap();
            assert_eq!(
                unpad_pin(padded.expose_secret()).unwrap().expose_secret(),
                b"87654321"
            );
            let hash = theirs.decrypt(&pin_hash_enc).unwrap();
            assert_eq!(
                hash.expose_secret().as_slice(),
                pin_hash(b"1234").expose_secret()
            );
        }
    }

    #[test]
    fn hmac_secret_both_sides() {
        let mut rng = counter_rng();
        for protocol in [PinProtocol::One, PinProtocol::Two] {
            let authenticator = KeyAgreementKey::generate(&mut rng).unwrap();
            let session =
                PlatformSession::new(protocol, &authenticator.public_key(), &mut rng).unwrap();
            let input = session
                .hmac_secret_input(&[1; 32], Some(&[2; 32]), &mut rng)
                .unwrap();
            let (shared, salts) = open_hmac_secret_input(&input, &authenticator).unwrap();
            assert_eq!(
                salts.expose_secret().as_slice(),
                [[1u8; 32], [2; 32]].concat()
            );
            let outputs = hmac_secret_outputs(&[9; 32], salts.expose_secret());
            let encrypted = shared.encrypt(outputs.expose_secret(), &mut rng).unwrap();
            let back = session.hmac_secret_output(&encrypted).unwrap();
            assert_eq!(back.expose_secret()[..32], hmac_sha256(&[9; 32], &[1; 32]));
            assert_eq!(back.expose_secret().len(), 64);

            let mut bad = input.clone();
            bad.salt_auth[0] ^= 1;
            assert_eq!(
                open_hmac_secret_input(&bad, &authenticator).unwrap_err(),
                StatusCode::CTAP2_ERR_PIN_AUTH_INVALID
            );
            let mut bad = input.clone();
            bad.pin_uv_auth_protocol = Some(3);
            assert_eq!(
                open_hmac_secret_input(&bad, &authenticator).unwrap_err(),
                StatusCode::CTAP1_ERR_INVALID_PARAMETER
            );
            let mut short = input.clone();
            short.salt_enc = session.shared.encrypt(&[0; 48], &mut rng).unwrap();
            short.salt_auth = session.shared.authenticate(&short.salt_enc);
            assert_eq!(
                open_hmac_secret_input(&short, &authenticator).unwrap_err(),
                StatusCode::CTAP1_ERR_INVALID_LENGTH
            );
        }
    }

    #[test]
    fn pin_rules() {
        assert!(pad_pin("123").is_err());
        assert!(pad_pin(&"1".repeat(64)).is_err());
        assert_eq!(pad_pin("1234").unwrap().expose_secret().len(), 64);
        assert_eq!(
            unpad_pin(&[0x31; 63]).unwrap_err(),
            StatusCode::CTAP1_ERR_INVALID_PARAMETER
        );
        assert_eq!(
            unpad_pin(&[0x31; 64]).unwrap_err(),
            StatusCode::CTAP2_ERR_PIN_POLICY_VIOLATION
        );
        let mut short = [0u8; 64];
        short[..3].copy_from_slice(b"123");
        assert_eq!(
            unpad_pin(&short).unwrap_err(),
            StatusCode::CTAP2_ERR_PIN_POLICY_VIOLATION
        );
        let mut gap = [0u8; 64];
        gap[..4].copy_from_slice(b"1234");
        gap[10] = 1;
        assert_eq!(
            unpad_pin(&gap).unwrap_err(),
            StatusCode::CTAP2_ERR_PIN_POLICY_VIOLATION
        );
        // SHA-256("1234") = 03ac674216f3e15c761ee1a5e255f067...
        assert_eq!(
            hex::encode(pin_hash(b"1234").expose_secret()),
            "03ac674216f3e15c761ee1a5e255f067"
        );
    }

    #[test]
    fn authenticate_lengths_and_bad_inputs() {
        assert_eq!(PinProtocol::One.authenticate(&[1; 32], b"m").len(), 16);
        assert_eq!(PinProtocol::Two.authenticate(&[1; 32], b"m").len(), 32);
        let full = PinProtocol::Two.authenticate(&[1; 32], b"m");
        assert!(
            !PinProtocol::One.verify(&[1; 32], b"m", &full),
            "v1 takes only 16 bytes"
        );
        assert!(PinProtocol::One.verify(&[1; 32], b"m", &full[..16]));
        let shared = PinProtocol::Two.kdf(&[5; 32]).unwrap();
        assert!(shared.decrypt(&[0; 15]).is_err());
        assert!(shared.decrypt(&[0; 33]).is_err());
        assert!(shared.encrypt_with_iv(&[0; 15], [0; 16]).is_err());
        assert!(KeyAgreementKey::generate(&mut |buf: &mut [u8]| buf.fill(0)).is_err());
        assert!(KeyAgreementKey::generate(&mut |buf: &mut [u8]| buf.fill(0xFF)).is_err());
    }
}
