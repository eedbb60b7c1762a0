//! The pure floor: image references, `.env` and interpolation, the factory's configuration,
//! the compose and stack models with one mount parser, the YAML writer of the stack file
//! (every string quoted), and the deployment history, the release keys, cosign's signatures and attestations, the verified
//! digests and the Docker client configuration. Nothing here starts a process or
//! touches the network (a test holds it to that).

pub mod bundle;
pub mod channel;
pub mod compose;
pub mod config;
pub mod docker_config;
pub mod dotenv;
pub mod history;
pub mod image_ref;
pub mod index;
pub mod keys;
pub mod migrate;
pub mod mount;
pub mod notify;
pub mod platform;
pub mod signature;
pub mod snapshot;
pub mod stack;
pub mod time;
pub mod verified;
pub mod window;
pub mod yaml;
