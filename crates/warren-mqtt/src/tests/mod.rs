mod codec;
mod delivery;
mod sizes;
