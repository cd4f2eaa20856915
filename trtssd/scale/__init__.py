"""Beyond one GPU and one machine: several GPUs per host, Ray clusters for archives."""
