"""``driftwarden report``: one self-contained HTML file per store or incident."""
