mod codec;
mod delivery;
