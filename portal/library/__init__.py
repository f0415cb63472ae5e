"""材料一套清: each account's document library, reused across applications."""
