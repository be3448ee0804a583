"""Legal holds: admins freeze an item, or a whole case, beyond its retention."""
