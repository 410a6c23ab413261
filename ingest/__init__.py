"""Files in and out: import (all-or-nothing, with FILE:LAYER:FEATURE:FIELD errors), export in six
formats, field mapping, DXF reading, local grids."""
